/**
 * THE configuration schema: every setting, its default and its description live
 * here and nowhere else. The README table is generated from it
 * (scripts/gen-config-doc.ts) and every subcommand reads the same parsed Config.
 *
 * Written with zod/mini, not zod's classic API: every command builds this schema at start (serve's included), and a
 * classic schema gives each of its ~300 parts some forty methods of its own: building it took 6-11 ms of every start
 * and each parse 1.3-3.5 ms (a compiled probe, scripts/bench-cold.ts's `bundle` and `config` phases), mini about a
 * third of that. Same checks (zod's core), same messages; a description is kept beside its setting (describe) rather
 * than in zod's registry, which would copy the schema once more.
 */
import os from "node:os";
import path from "node:path";
import { z } from "../util/zod-mini";
import { isAddressOrRange } from "./address-range";

/** Where state lives when no --state-dir is given: the service's dir when installed, else per user. */
export function defaultStateDir(): string {
  if (process.env.STATE_DIRECTORY) return process.env.STATE_DIRECTORY.split(":")[0]!; // systemd StateDirectory=
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Application Support", "appliance");
  return path.join(process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state"), "appliance");
}

const descriptions = new WeakMap<object, string>();
/** Gives a setting its description (the README table's column): the schema itself, unchanged. */
const describe = <T extends z.ZodMiniType>(schema: T, text: string): T => { descriptions.set(schema, text); return schema; };
/** A setting's description, as scripts/gen-config-doc.ts writes it into the README. */
export const descriptionOf = (schema: object): string | undefined => descriptions.get(schema);
/** The schema a default or prefault wraps (the object of a section, the list of a list setting), else the schema itself. */
export const withoutDefault = (schema: z.ZodMiniType): z.ZodMiniType => {
  const def = schema._zod.def as { type: string; innerType?: z.ZodMiniType };
  return (def.type === "default" || def.type === "prefault") && def.innerType ? def.innerType : schema;
};

const int = (...checks: z.core.$ZodCheck<number>[]) => z.number().check(z.int(), ...checks);
// Range before int(): 1e20 read "expected int to be <=9007199254740991" (the safe-integer bound), not the port range.
const port = z.number().check(z.gte(0), z.lte(65535), z.int());
const positive = int(z.gt(0));
const text = (...checks: z.core.$ZodCheck<string>[]) => z.string().check(...checks);
const nonEmpty = () => text(z.minLength(1));

const compiles = (p: string) => { try { new RegExp(p); return true; } catch { return false; } };
/** A URL whose host is an IP literal or localhost: reaching it needs no DNS, and a firewall can allow exactly it. */
const literalHost = (u: string) => {
  const h = new URL(u).hostname.replace(/^\[|\]$/g, "");
  return h === "localhost" || /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || (h.includes(":") && /^[0-9a-f:.]+$/i.test(h));
};
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const guardRuleAction = z.enum(["block", "flag", "strip"]);

export const configSchema = z.strictObject({
  host: describe(z._default(nonEmpty(), "127.0.0.1"), "Address to listen on. Anything but loopback also needs --allow-public-bind and auth."),
  port: describe(z._default(port, 8000), "TCP port to listen on (0 picks a free one)."),
  allowPublicBind: describe(z._default(z.boolean(), false), "Permit a non-loopback --host. Refused unless auth is on."),
  egressLock: describe(z._default(z.enum(["require", "warn"]), "require"), "Installed service (systemd): where the unit's egress lock (IPAddressDeny=any, a BPF firewall) is not in effect, \"require\" refuses the start; \"warn\" starts anyway with a warning in verify's output and the journal."),
  tlsCert: describe(z._default(z.string(), ""), "PEM certificate (chain) to serve HTTPS with; needs tlsKey. Empty: plain HTTP. TLS below 1.2 is refused."),
  tlsKey: describe(z._default(z.string(), ""), "PEM private key of tlsCert (RSA >= 2048 bits or EC >= 256 bits)."),
  tlsClientCa: describe(z._default(z.string(), ""), "PEM CA bundle: require a client certificate signed by it (mTLS); a client without one never gets an HTTP answer."),
  model: describe(z._default(z.array(nonEmpty()), []), "GGUF model file or directory of them (repeatable). Empty: every model in the state dir's manifest."),
  stateDir: describe(z._default(nonEmpty(), defaultStateDir()), "Keys, model manifest, audit log and unpacked native libraries."),
  threads: describe(z._default(int(z.gte(0), z.lte(1024)), 0), "CPU threads for inference. 0 (adaptive) = at most one per CPU this process may use (affinity, cgroup quota, online), fewer while other processes keep CPUs busy (re-checked every 250 ms), and each small decode step on the count measured fastest; N = exactly N, lowered to the usable CPUs."),
  ctxSize: describe(z._default(positive.check(z.lte(1 << 20)), 4096), "Context window per sequence in tokens (capped at the model's training context)."),
  parallel: describe(z._default(positive.check(z.lte(64)), 2), "Sequences generated at once per model (batched together)."),
  promptCache: describe(z._default(z.boolean(), true), "Keep each sequence's evaluated prompt after a generation; a later prompt from the same API key (or, without keys, any prompt) that starts the same evaluates only what follows (usage.prompt_tokens_details.cached_tokens). Never shared between keys. false: every prompt is evaluated whole."),
  maxQueue: describe(z._default(int(z.gte(0), z.lte(10_000)), 32), "Requests allowed to wait for a free sequence; beyond that the server answers 503 with Retry-After."),
  defaultMaxTokens: describe(z._default(positive, 512), "max_tokens when a request gives none, lowered to what the context leaves after the prompt (never a 400 for a length the client did not ask for)."),
  maxTokensCap: describe(z._default(positive, 4096), "Largest max_tokens a request may ask for (never above the context)."),
  gpu: describe(z._default(z.enum(["auto", "cuda", "vulkan", "metal", "off"]), "auto"), "GPU backend. Any GPU backend is preflighted in a child process first; on failure the server falls back to CPU."),
  gpuLayers: describe(z._default(z.union([z.literal("auto"), int(z.gte(0))], { error: "auto or a whole number >= 0" }), "auto"), "Model layers to offload to the GPU."),
  engine: describe(z.prefault(z.strictObject({
    use: describe(z._default(z.enum(["auto", "embedded", "built"]), "auto"), "Which llama.cpp libraries serve loads. auto: the engine `appliance engine build` made on this machine for this binary's node-llama-cpp version when there is one, else the embedded ones; embedded: always the embedded ones; built: the built one or no start. A built engine is checked file by file against its recorded sha256 at every start (root-owned, exact contents); under auto or built a mismatch stops the start (embedded does not look at it)."),
    // Rendered into the unit's ExecPaths= and the AppArmor profile: no spaces, quotes, globs or control characters.
    dir: describe(z._default(text(
      z.regex(/^(\/[A-Za-z0-9._+@-]+)+$/, "an absolute path of letters, digits and . _ + @ - (it is written into the unit and the AppArmor profile)"),
      z.refine((d: string) => !d.split("/").some((part) => part === "." || part === ".."), "no . or .. parts"),
    ), "/usr/local/lib/appliance/engine"), "Where `appliance engine build` installs engines (<dir>/<node-llama-cpp version>/) and serve looks for them. Must be root-owned all the way up; install writes it into the unit's ExecPaths= and the AppArmor profile (re-run install after changing it)."),
  }), {}), "The llama.cpp engine: embedded in the binary, or built on this machine (appliance engine build)."),
  modelsDir: describe(z._default(z.string(), ""), "Where `models add` puts models and CHECKSUMS.sha256. Empty: <stateDir>/models."),
  allowUnverified: describe(z._default(z.boolean(), false), "Serve models that are missing from the checksum manifest (development only; warns on every start)."),
  shutdownGraceMs: describe(z._default(int(z.gte(0), z.lte(600_000)), 10_000), "On SIGTERM/SIGINT, how long in-flight requests may finish before they are cancelled (a second SIGTERM/SIGINT, a second Ctrl-C, ends it at once); an answer cancelled so still ends the OpenAI way with what was generated and finish_reason \"length\" (a stream with `data: [DONE]`), and a request cancelled before anything was generated for it gets a 503 `not_ready` with Retry-After (a stream whose headers went out: an error event), which the SDKs retry. While it drains the port stays open: a new request (a new connection or a kept-alive one, /health too) gets that 503 too, and every answer closes its connection (`Connection: close`)."),
  logLevel: describe(z._default(z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]), "info"), "pino log level (JSON lines on stdout)."),
  logPrompts: describe(z._default(z.boolean(), false), "Log prompt and response text. Off by default: logs must not hold user data."),
  auth: describe(z._default(z.boolean(), true), "Require an API key on every route but GET /health (and the API docs while docsPublic is on)."),
  docsPublic: describe(z._default(z.boolean(), true), "Serve the API docs (/swagger, /swagger/json, their assets) without a key: the API's shape is no secret (public docs name no model, tokenizer or release). Calls made from the page still need a key (Authorize)."),
  corsOrigins: describe(z._default(z.array(z.string()), []), "Origins allowed by CORS. Empty: no CORS headers, browsers are denied."),
  allowedHosts: describe(z._default(z.array(z.string()), []), "Extra Host header values accepted (DNS-rebinding guard). Loopback names and the bind address are always accepted."),
  trustedProxies: describe(z._default(z.array(text(z.refine(isAddressOrRange, "an IP address or CIDR range (10.0.0.0/8, fd00::/8; an IPv4 range written as IPv4, not ::ffff:…/n)"))), []), "Proxies in front of this server (a load balancer, or an appliance gateway: both set X-Forwarded-For): from these peers the client's address is the nearest one in X-Forwarded-For that is not a trusted proxy. Per-client limits (failed-auth throttle, anonymous limit), logs and audit use it. Empty: the socket's peer is the client, and X-Forwarded-For is ignored."),
  maxBodyBytes: describe(z._default(positive, 1 << 20), "Largest request body accepted (413 beyond)."),
  maxMessages: describe(z._default(positive, 256), "Most chat messages in one request."),
  maxEmbeddingInputs: describe(z._default(positive.check(z.lte(2048)), 2048), "Most inputs in one embeddings request (OpenAI's limit, what LangChain and the SDKs batch by; all of them together are bounded by maxPromptChars)."),
  maxPromptChars: describe(z._default(positive, 200_000), "Most characters of prompt text in one request, all messages together (the newline that joins a message's text parts counts as one, as the model reads it)."),
  rateLimit: describe(z.prefault(z.strictObject({
    rpm: describe(z._default(int(z.gte(0)), 120), "Requests per minute per key (0 = unlimited)."),
    tpm: describe(z._default(int(z.gte(0)), 100_000), "Tokens per minute per key (0 = unlimited)."),
    burst: describe(z._default(z.number().check(z.gte(1)), 1), "Bucket size as a multiple of the per-minute rate."),
    maxConcurrent: describe(z._default(int(z.gte(0)), 4), "Concurrent generations per key (0 = unlimited)."),
    anonymousRpm: describe(z._default(int(z.gte(0)), 30), "Requests per minute per client address without a valid key: the public docs with auth on, every route with auth off; never GET /health (0 = no limit)."),
    authFailuresPerMinute: describe(z._default(int(z.gte(1)), 10), "Failed auth attempts per client address per minute before 429."),
    authFailureNetworkFactor: describe(z._default(int(z.gte(1), z.lte(1000)), 5), "A whole network (IPv4 /24, IPv6 /64, all of loopback) may fail auth this many times as often as one address before 429, so rotating source addresses does not dodge the throttle."),
    store: describe(z._default(z.enum(["memory", "redis"]), "memory"), "Where limits, concurrency slots, signature nonces and key revocations live: \"memory\" (this process) or \"redis\" (shared by every instance using the same redisUrl and redisPrefix)."),
    redisUrl: describe(z._default(z.string(), ""), "Redis for store \"redis\": redis://host:6379/0, rediss:// (TLS) or redis+unix:///path/redis.sock. Keep the password out of it with redisPasswordFile or redisPasswordEnv."),
    redisPasswordFile: describe(z._default(z.string(), ""), "File holding the Redis password (read once at start, trimmed)."),
    redisPasswordEnv: describe(z._default(z.union([text(z.regex(ENV_NAME)), z.literal("")]), ""), "Environment variable holding the Redis password."),
    redisPrefix: describe(z._default(text(z.regex(/^[A-Za-z0-9:_.-]{1,64}$/)), "appliance:"), "Prefix of every Redis key; instances sharing one budget use the same prefix."),
    redisTimeoutMs: describe(z._default(int(z.gte(10), z.lte(10_000)), 250), "Longest wait for one Redis answer; a slower or failed answer counts as Redis unreachable."),
    redisUnavailable: describe(z._default(z.enum(["local", "refuse"]), "local"), "While Redis is unreachable: \"local\" keeps serving with this instance's own limits, nonces and last known revocations (logged as an error every 10 s; /metrics appliance_shared_state_redis_up); \"refuse\" answers 503 to every request that needs the shared state."),
    concurrencyLeaseMs: describe(z._default(int(z.gte(1_000), z.lte(600_000)), 30_000), "Store redis: a concurrency slot expires unless its instance renews it (every third of this), so the slots of an instance that died are freed after at most this long."),
  }).check(z.refine((r: { store: string; redisUrl: string }) => r.store !== "redis" || r.redisUrl !== "", { message: "store \"redis\" needs redisUrl", path: ["redisUrl"] })), {}),
  "Rate limits; per-key limits override these."),
  promptGuard: describe(z.prefault(z.strictObject({
    specialTokens: describe(z._default(guardRuleAction, "block"), "The model's own control tokens typed in user text."),
    invisibleUnicode: describe(z._default(guardRuleAction, "block"), "Invisible and bidi-control characters (Trojan Source, hidden text); emoji sequences and the joiners, direction marks and soft hyphens of ordinary writing excepted (README, Security model)."),
    injectionPhrases: describe(z._default(guardRuleAction, "flag"), "Known prompt-injection phrases."),
    rules: describe(z._default(z.array(z.strictObject({
      id: text(z.regex(/^[a-z0-9_.-]+$/i)),
      pattern: text(z.minLength(1), z.refine(compiles, "not a valid regular expression")),
      flags: z._default(text(z.regex(/^[imsu]*$/)), "i"),
      action: z._default(guardRuleAction, "block"),
    })), []), "Extra regex rules: {id, pattern, flags, action}. Config file only."),
  }), {}), "Prompt guard rules and actions."),
  responseScan: describe(z.prefault(z.strictObject({
    action: describe(z._default(z.enum(["redact", "block", "off"]), "redact"), "What to do with secrets found in generated text."),
    pii: describe(z._default(z.boolean(), false), "Also scan for e-mail, payment cards (Luhn), IBANs (checksum) and phone numbers."),
    internalHosts: describe(z._default(z.array(z.string()), [".internal", ".local", ".lan", ".corp"]), "Host name suffixes treated as internal addresses."),
    burstChars: describe(z._default(int(z.gte(0), z.lte(65_536)), 1024), "Chunks arriving less than 1 ms apart (a replayed or cached answer, not live generation) are scanned in batches of up to this many characters (0: every chunk at once). A stream holds back at most this plus 8,192 characters (a JWT or PEM opening still being written, a match spread over invisible characters)."),
  }), {}), "Response scanner."),
  limits: describe(z.prefault(z.strictObject({
    jsonMaxDepth: describe(z._default(int(z.gte(2), z.lte(1000)), 64), "Deepest nesting of arrays/objects in a JSON body, checked before it is parsed (400 json_too_deep)."),
    jsonMaxWidth: describe(z._default(int(z.gte(16), z.lte(10_000_000)), 16_384), "Most elements in one JSON array or members in one object (400 json_too_wide). An 8,192-token prompt array fits."),
    bodyTimeoutMs: describe(z._default(int(z.gte(100), z.lte(600_000)), 30_000), "A request body must arrive within this, or the client gets 408 body_timeout and the connection is closed (slow-body attacks)."),
    idleTimeoutSeconds: describe(z._default(int(z.gte(1), z.lte(255)), 30), "A kept-alive connection with no request in progress is closed after this (Bun allows at most 255). A request lifts it while it runs: a generation may be silent for minutes."),
    streamBacklogBytes: describe(z._default(int(z.gte(65_536), z.lte(1 << 30)), 8 << 20), "Most bytes of a streamed answer the server holds for a client that is not reading them (beyond what the socket buffers): past it the generation is cancelled and the connection closed (logged and audited as 499). Without it a client that never reads had its answers generated and held in memory whole."),
    anonymousLogLinesPerMinute: describe(z._default(int(z.gte(1), z.lte(1_000_000)), 60), "With auth on, log and audit lines per minute for requests without a valid key (401, 429, 421 …); every one is still counted in /metrics, and the next line written says how many were left out."),
    chatTemplateMs: describe(z._default(int(z.gte(50), z.lte(600_000)), 2_000), "A model whose chat template is Jinja (not one of node-llama-cpp's built-in formats) has each chat's messages rendered first in a worker thread; a render taking longer is stopped and the request refused (400 chat_template_bound), so a template whose cost grows with the request cannot stall the server."),
    chatTemplateChars: describe(z._default(int(z.gte(1024), z.lte(100_000_000)), 4_000_000), "Most characters that rendering one chat through a Jinja chat template may produce (400 chat_template_bound beyond)."),
    chatTemplateWorkers: describe(z._default(int(z.gte(1), z.lte(64)), 2), "Worker threads per Jinja-templated model that check chats' rendering side by side (one slow chat does not hold up the others); node-llama-cpp's own renders during generation use one more."),
  }), {}), "Limits on request bodies and on logging, against resource-exhaustion attacks."),

  tracing: describe(z.prefault(z.strictObject({
    otlpEndpoint: describe(z._default(z.union([z.literal(""), z.url({ protocol: /^https?$/ }).check(z.refine(literalHost, "the host must be an IP address or localhost (no DNS lookup; the service's firewall allows exactly this address)"))]), ""), "OTLP/HTTP collector to send spans to (JSON encoding), e.g. http://10.0.0.9:4318 (POSTs go to <url>/v1/traces). Empty: no export, and no connection is ever made. The installed service's firewall allows this one address."),
    maxQueuedSpans: describe(z._default(positive.check(z.lte(1_000_000)), 4096), "Spans waiting for export; beyond that new spans are dropped (counted in /metrics), so requests never wait on the collector."),
  }), {}), "Tracing: W3C traceparent is always read and answered; spans leave the machine only with otlpEndpoint set."),
  upstreams: describe(z._default(z.array(z.strictObject({
    url: describe(z.url({ protocol: /^https?$/ }), "OpenAI-compatible base URL, e.g. http://10.0.0.5:8000/v1 (requests go to <url>/chat/completions)."),
    apiKey: describe(z._default(z.string(), ""), "Bearer key this upstream expects (sent to it alone, never the client's key)."),
    apiKeyFile: describe(z._default(z.string(), ""), "File holding that key (read once at start, trimmed), so the secret need not sit in the config."),
    apiKeyEnv: describe(z._default(z.union([text(z.regex(ENV_NAME)), z.literal("")]), ""), "Environment variable holding that key."),
    models: describe(z.array(nonEmpty()).check(z.minLength(1)), "Model ids this upstream serves (the ids clients send)."),
    tlsCa: describe(z._default(z.string(), ""), "PEM CA bundle this upstream's certificate is checked against (an upstream with a private CA). Empty: the system's CAs."),
    tlsCert: describe(z._default(z.string(), ""), "PEM client certificate shown to this upstream (an appliance upstream run with --tls-client-ca: mTLS); needs tlsKey."),
    tlsKey: describe(z._default(z.string(), ""), "PEM private key of tlsCert."),
  }).check(
    z.refine((u: { apiKey: string; apiKeyFile: string; apiKeyEnv: string }) => [u.apiKey, u.apiKeyFile, u.apiKeyEnv].filter(Boolean).length <= 1, "give at most one of apiKey, apiKeyFile, apiKeyEnv"),
    z.refine((u: { tlsCert: string; tlsKey: string }) => !u.tlsCert === !u.tlsKey, "tlsCert and tlsKey go together"),
    z.refine((u: { url: string; tlsCa: string; tlsCert: string }) => /^https:/i.test(u.url) || (!u.tlsCa && !u.tlsCert), "tlsCa, tlsCert and tlsKey need an https:// url"),
  )), []),
  "Gateway mode: OpenAI-compatible servers (vLLM, llama-server, another appliance) whose models this server fronts with its own guards. Config file only."),
  gateway: describe(z.prefault(z.strictObject({
    firstByteTimeoutMs: describe(z._default(positive, 120_000), "Upstream: time from starting an attempt (connect included) to its response headers; a non-streamed answer's headers come only once it is generated, so this bounds its length too."),
    connectTimeoutMs: describe(z._default(positive, 3_000), "Upstream: time to open a TCP connection to it, checked (by a connect of its own) whenever no request to it succeeded in the last 5 s; past it the attempt fails and goes to another upstream."),
    idleTimeoutMs: describe(z._default(positive, 60_000), "Upstream: longest silence inside a streamed response before it is cut off as failed."),
    tokenPrompts: describe(z._default(z.enum(["guard", "forward"]), "guard"), "Token-id prompts (/v1/completions) for upstream models. guard: turned into text by the upstream's POST /detokenize and read by the prompt guard (an upstream without it: 400 naming prompt); forward: sent as they are, unread by the prompt guard."),
    retries: describe(z._default(int(z.gte(0), z.lte(10)), 2), "Extra attempts on another (or the same) upstream, only before any byte reached the client."),
    backoffMs: describe(z._default(int(z.gte(0)), 50), "First retry delay; doubled per retry (exponential backoff)."),
    backoffMaxMs: describe(z._default(int(z.gte(0)), 2_000), "Cap on one retry delay."),
    breakerFailures: describe(z._default(positive, 3), "Consecutive failures that open an upstream's circuit breaker."),
    breakerCooldownMs: describe(z._default(positive, 30_000), "How long an open breaker keeps the upstream out; then one request is let through as a half-open probe."),
    healthIntervalMs: describe(z._default(int(z.gte(0)), 10_000), "Active health check period (GET <url>/models); 0 = off."),
    healthTimeoutMs: describe(z._default(positive, 2_000), "Time a health check may take before it counts as failed."),
  }), {}), "Gateway tunables (apply to every upstream)."),
  audit: describe(z._default(z.boolean(), true), "Write the hash-chained audit log (state dir audit.jsonl)."),
  memoryMax: describe(z._default(text(z.regex(/^(\d+[KMGT]?|infinity|auto)$/)), "auto"), "systemd MemoryMax= for the service (install). auto: 75% of the machine's memory, measured at install."),
  cpuQuota: describe(z._default(text(z.regex(/^(\d+%|auto)$/)), "auto"), "systemd CPUQuota= for the service (install). auto: every CPU of the machine (100% per CPU), measured at install."),
});

export type Config = z.output<typeof configSchema>;
/** The settings a config file / env / flags may give; anything left out takes its default. */
export type ConfigInput = z.input<typeof configSchema>;
