/**
 * THE configuration schema: every setting, its default and its description live
 * here and nowhere else. The README table is generated from it
 * (scripts/gen-config-doc.ts) and every subcommand reads the same parsed Config.
 */
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { isAddressOrRange } from "./address-range";

/** Where state lives when no --state-dir is given: the service's dir when installed, else per user. */
export function defaultStateDir(): string {
  if (process.env.STATE_DIRECTORY) return process.env.STATE_DIRECTORY.split(":")[0]!; // systemd StateDirectory=
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Application Support", "appliance");
  return path.join(process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state"), "appliance");
}

// Range before int(): 1e20 read "expected int to be <=9007199254740991" (the safe-integer bound), not the port range.
const port = z.number().min(0).max(65535).int();
const positive = z.number().int().positive();

const compiles = (p: string) => { try { new RegExp(p); return true; } catch { return false; } };
/** A URL whose host is an IP literal or localhost: reaching it needs no DNS, and a firewall can allow exactly it. */
const literalHost = (u: string) => {
  const h = new URL(u).hostname.replace(/^\[|\]$/g, "");
  return h === "localhost" || /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || (h.includes(":") && /^[0-9a-f:.]+$/i.test(h));
};

export const guardRuleAction = z.enum(["block", "flag", "strip"]);

export const configSchema = z.strictObject({
  host: z.string().min(1).default("127.0.0.1")
    .describe("Address to listen on. Anything but loopback also needs --allow-public-bind and auth."),
  port: port.default(8000).describe("TCP port to listen on (0 picks a free one)."),
  allowPublicBind: z.boolean().default(false)
    .describe("Permit a non-loopback --host. Refused unless auth is on."),
  egressLock: z.enum(["require", "warn"]).default("require")
    .describe("Installed service (systemd): where the unit's egress lock (IPAddressDeny=any, a BPF firewall) is not in effect, \"require\" refuses the start; \"warn\" starts anyway with a warning in verify's output and the journal."),
  tlsCert: z.string().default("")
    .describe("PEM certificate (chain) to serve HTTPS with; needs tlsKey. Empty: plain HTTP. TLS below 1.2 is refused."),
  tlsKey: z.string().default("").describe("PEM private key of tlsCert (RSA >= 2048 bits or EC >= 256 bits)."),
  tlsClientCa: z.string().default("")
    .describe("PEM CA bundle: require a client certificate signed by it (mTLS); a client without one never gets an HTTP answer."),
  model: z.array(z.string().min(1)).default([])
    .describe("GGUF model file or directory of them (repeatable). Empty: every model in the state dir's manifest."),
  stateDir: z.string().min(1).default(defaultStateDir())
    .describe("Keys, model manifest, audit log and unpacked native libraries."),
  threads: z.number().int().min(0).max(1024).default(0)
    .describe("CPU threads for inference. 0 (adaptive) = at most one per CPU this process may use (affinity, cgroup quota, online), fewer while other processes keep CPUs busy (re-checked every 250 ms), and each small decode step on the count measured fastest; N = exactly N, lowered to the usable CPUs."),
  ctxSize: positive.max(1 << 20).default(4096)
    .describe("Context window per sequence in tokens (capped at the model's training context)."),
  parallel: positive.max(64).default(2).describe("Sequences generated at once per model (batched together)."),
  promptCache: z.boolean().default(true)
    .describe("Keep each sequence's evaluated prompt after a generation; a later prompt from the same API key (or, without keys, any prompt) that starts the same evaluates only what follows (usage.prompt_tokens_details.cached_tokens). Never shared between keys. false: every prompt is evaluated whole."),
  maxQueue: z.number().int().min(0).max(10_000).default(32)
    .describe("Requests allowed to wait for a free sequence; beyond that the server answers 503 with Retry-After."),
  defaultMaxTokens: positive.default(512).describe("max_tokens when a request gives none, lowered to what the context leaves after the prompt (never a 400 for a length the client did not ask for)."),
  maxTokensCap: positive.default(4096).describe("Largest max_tokens a request may ask for (never above the context)."),
  gpu: z.enum(["auto", "cuda", "vulkan", "metal", "off"]).default("auto")
    .describe("GPU backend. Any GPU backend is preflighted in a child process first; on failure the server falls back to CPU."),
  gpuLayers: z.union([z.literal("auto"), z.number().int().min(0)], { error: "auto or a whole number >= 0" }).default("auto")
    .describe("Model layers to offload to the GPU."),
  engine: z.strictObject({
    use: z.enum(["auto", "embedded", "built"]).default("auto")
      .describe("Which llama.cpp libraries serve loads. auto: the engine `appliance engine build` made on this machine for this binary's node-llama-cpp version when there is one, else the embedded ones; embedded: always the embedded ones; built: the built one or no start. A built engine is checked file by file against its recorded sha256 at every start (root-owned, exact contents); under auto or built a mismatch stops the start (embedded does not look at it)."),
    // Rendered into the unit's ExecPaths= and the AppArmor profile: no spaces, quotes, globs or control characters.
    dir: z.string().regex(/^(\/[A-Za-z0-9._+@-]+)+$/, "an absolute path of letters, digits and . _ + @ - (it is written into the unit and the AppArmor profile)")
      .refine((d) => !d.split("/").some((part) => part === "." || part === ".."), "no . or .. parts").default("/usr/local/lib/appliance/engine")
      .describe("Where `appliance engine build` installs engines (<dir>/<node-llama-cpp version>/) and serve looks for them. Must be root-owned all the way up; install writes it into the unit's ExecPaths= and the AppArmor profile (re-run install after changing it)."),
  }).prefault({}).describe("The llama.cpp engine: embedded in the binary, or built on this machine (appliance engine build)."),
  modelsDir: z.string().default("")
    .describe("Where `models add` puts models and CHECKSUMS.sha256. Empty: <stateDir>/models."),
  allowUnverified: z.boolean().default(false)
    .describe("Serve models that are missing from the checksum manifest (development only; warns on every start)."),
  shutdownGraceMs: z.number().int().min(0).max(600_000).default(10_000)
    .describe("On SIGTERM/SIGINT, how long in-flight requests may finish before they are cancelled (a second SIGTERM/SIGINT, a second Ctrl-C, ends it at once); an answer cancelled so still ends the OpenAI way with what was generated and finish_reason \"length\" (a stream with `data: [DONE]`), and a request cancelled before anything was generated for it gets a 503 `not_ready` with Retry-After (a stream whose headers went out: an error event), which the SDKs retry. While it drains the port stays open: a new request (a new connection or a kept-alive one, /health too) gets that 503 too, and every answer closes its connection (`Connection: close`)."),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info")
    .describe("pino log level (JSON lines on stdout)."),
  logPrompts: z.boolean().default(false)
    .describe("Log prompt and response text. Off by default: logs must not hold user data."),
  auth: z.boolean().default(true).describe("Require an API key on every route but GET /health (and the API docs while docsPublic is on)."),
  docsPublic: z.boolean().default(true)
    .describe("Serve the API docs (/swagger, /swagger/json, their assets) without a key: the API's shape is no secret (public docs name no model, tokenizer or release). Calls made from the page still need a key (Authorize)."),
  corsOrigins: z.array(z.string()).default([]).describe("Origins allowed by CORS. Empty: no CORS headers, browsers are denied."),
  allowedHosts: z.array(z.string()).default([])
    .describe("Extra Host header values accepted (DNS-rebinding guard). Loopback names and the bind address are always accepted."),
  trustedProxies: z.array(z.string().refine(isAddressOrRange, "an IP address or CIDR range (10.0.0.0/8, fd00::/8; an IPv4 range written as IPv4, not ::ffff:…/n)")).default([])
    .describe("Proxies in front of this server (a load balancer, or an appliance gateway: both set X-Forwarded-For): from these peers the client's address is the nearest one in X-Forwarded-For that is not a trusted proxy. Per-client limits (failed-auth throttle, anonymous limit), logs and audit use it. Empty: the socket's peer is the client, and X-Forwarded-For is ignored."),
  maxBodyBytes: positive.default(1 << 20).describe("Largest request body accepted (413 beyond)."),
  maxMessages: positive.default(256).describe("Most chat messages in one request."),
  maxEmbeddingInputs: positive.max(2048).default(2048).describe("Most inputs in one embeddings request (OpenAI's limit, what LangChain and the SDKs batch by; all of them together are bounded by maxPromptChars)."),
  maxPromptChars: positive.default(200_000).describe("Most characters of prompt text in one request, all messages together (the newline that joins a message's text parts counts as one, as the model reads it)."),
  rateLimit: z.strictObject({
    rpm: z.number().int().min(0).default(120).describe("Requests per minute per key (0 = unlimited)."),
    tpm: z.number().int().min(0).default(100_000).describe("Tokens per minute per key (0 = unlimited)."),
    burst: z.number().min(1).default(1).describe("Bucket size as a multiple of the per-minute rate."),
    maxConcurrent: z.number().int().min(0).default(4).describe("Concurrent generations per key (0 = unlimited)."),
    anonymousRpm: z.number().int().min(0).default(30).describe("Requests per minute per client address without a valid key: the public docs with auth on, every route with auth off; never GET /health (0 = no limit)."),
    authFailuresPerMinute: z.number().int().min(1).default(10).describe("Failed auth attempts per client address per minute before 429."),
    authFailureNetworkFactor: z.number().int().min(1).max(1000).default(5)
      .describe("A whole network (IPv4 /24, IPv6 /64, all of loopback) may fail auth this many times as often as one address before 429, so rotating source addresses does not dodge the throttle."),
    store: z.enum(["memory", "redis"]).default("memory")
      .describe("Where limits, concurrency slots, signature nonces and key revocations live: \"memory\" (this process) or \"redis\" (shared by every instance using the same redisUrl and redisPrefix)."),
    redisUrl: z.string().default("")
      .describe("Redis for store \"redis\": redis://host:6379/0, rediss:// (TLS) or redis+unix:///path/redis.sock. Keep the password out of it with redisPasswordFile or redisPasswordEnv."),
    redisPasswordFile: z.string().default("").describe("File holding the Redis password (read once at start, trimmed)."),
    redisPasswordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).or(z.literal("")).default("")
      .describe("Environment variable holding the Redis password."),
    redisPrefix: z.string().regex(/^[A-Za-z0-9:_.-]{1,64}$/).default("appliance:")
      .describe("Prefix of every Redis key; instances sharing one budget use the same prefix."),
    redisTimeoutMs: z.number().int().min(10).max(10_000).default(250)
      .describe("Longest wait for one Redis answer; a slower or failed answer counts as Redis unreachable."),
    redisUnavailable: z.enum(["local", "refuse"]).default("local")
      .describe("While Redis is unreachable: \"local\" keeps serving with this instance's own limits, nonces and last known revocations (logged as an error every 10 s, shown in sharedState); \"refuse\" answers 503 to every request that needs the shared state."),
    concurrencyLeaseMs: z.number().int().min(1_000).max(600_000).default(30_000)
      .describe("Store redis: a concurrency slot expires unless its instance renews it (every third of this), so the slots of an instance that died are freed after at most this long."),
  }).refine((r) => r.store !== "redis" || r.redisUrl !== "", { message: "store \"redis\" needs redisUrl", path: ["redisUrl"] })
    .prefault({}).describe("Rate limits; per-key limits override these."),
  promptGuard: z.strictObject({
    specialTokens: guardRuleAction.default("block").describe("The model's own control tokens typed in user text."),
    invisibleUnicode: guardRuleAction.default("block").describe("Invisible and bidi-control characters (Trojan Source)."),
    injectionPhrases: guardRuleAction.default("flag").describe("Known prompt-injection phrases."),
    rules: z.array(z.strictObject({
      id: z.string().regex(/^[a-z0-9_.-]+$/i),
      pattern: z.string().min(1).refine(compiles, "not a valid regular expression"),
      flags: z.string().regex(/^[imsu]*$/).default("i"),
      action: guardRuleAction.default("block"),
    })).default([]).describe("Extra regex rules: {id, pattern, flags, action}. Config file only."),
  }).prefault({}).describe("Prompt guard rules and actions."),
  responseScan: z.strictObject({
    action: z.enum(["redact", "block", "off"]).default("redact").describe("What to do with secrets found in generated text."),
    pii: z.boolean().default(false).describe("Also scan for e-mail, payment cards (Luhn), IBANs (checksum) and phone numbers."),
    internalHosts: z.array(z.string()).default([".internal", ".local", ".lan", ".corp"])
      .describe("Host name suffixes treated as internal addresses."),
    burstChars: z.number().int().min(0).max(65_536).default(1024)
      .describe("Chunks arriving less than 1 ms apart (a replayed or cached answer, not live generation) are scanned in batches of up to this many characters (0: every chunk at once). A stream holds back at most this plus 8,192 characters (a JWT or PEM opening still being written, a match spread over invisible characters)."),
  }).prefault({}).describe("Response scanner."),
  limits: z.strictObject({
    jsonMaxDepth: z.number().int().min(2).max(1000).default(64)
      .describe("Deepest nesting of arrays/objects in a JSON body, checked before it is parsed (400 json_too_deep)."),
    jsonMaxWidth: z.number().int().min(16).max(10_000_000).default(16_384)
      .describe("Most elements in one JSON array or members in one object (400 json_too_wide). An 8,192-token prompt array fits."),
    bodyTimeoutMs: z.number().int().min(100).max(600_000).default(30_000)
      .describe("A request body must arrive within this, or the client gets 408 body_timeout and the connection is closed (slow-body attacks)."),
    idleTimeoutSeconds: z.number().int().min(1).max(255).default(30)
      .describe("A kept-alive connection with no request in progress is closed after this (Bun allows at most 255). A request lifts it while it runs: a generation may be silent for minutes."),
    streamBacklogBytes: z.number().int().min(65_536).max(1 << 30).default(8 << 20)
      .describe("Most bytes of a streamed answer the server holds for a client that is not reading them (beyond what the socket buffers): past it the generation is cancelled and the connection closed (logged and audited as 499). Without it a client that never reads had its answers generated and held in memory whole."),
    anonymousLogLinesPerMinute: z.number().int().min(1).max(1_000_000).default(60)
      .describe("With auth on, log and audit lines per minute for requests without a valid key (401, 429, 421 …); every one is still counted in /metrics, and the next line written says how many were left out."),
    chatTemplateMs: z.number().int().min(50).max(600_000).default(2_000)
      .describe("A model whose chat template is Jinja (not one of node-llama-cpp's built-in formats) has each chat's messages rendered first in a worker thread; a render taking longer is stopped and the request refused (400 chat_template_bound), so a template whose cost grows with the request cannot stall the server."),
    chatTemplateChars: z.number().int().min(1024).max(100_000_000).default(4_000_000)
      .describe("Most characters that rendering one chat through a Jinja chat template may produce (400 chat_template_bound beyond)."),
    chatTemplateWorkers: z.number().int().min(1).max(64).default(2)
      .describe("Worker threads per Jinja-templated model that check chats' rendering side by side (one slow chat does not hold up the others); node-llama-cpp's own renders during generation use one more."),
  }).prefault({}).describe("Limits on request bodies and on logging, against resource-exhaustion attacks."),

  tracing: z.strictObject({
    otlpEndpoint: z.union([z.literal(""), z.url({ protocol: /^https?$/ }).refine(literalHost, "the host must be an IP address or localhost (no DNS lookup; the service's firewall allows exactly this address)")])
      .default("").describe("OTLP/HTTP collector to send spans to (JSON encoding), e.g. http://10.0.0.9:4318 (POSTs go to <url>/v1/traces). Empty: no export, and no connection is ever made. The installed service's firewall allows this one address."),
    maxQueuedSpans: positive.max(1_000_000).default(4096).describe("Spans waiting for export; beyond that new spans are dropped (counted in /metrics), so requests never wait on the collector."),
  }).prefault({}).describe("Tracing: W3C traceparent is always read and answered; spans leave the machine only with otlpEndpoint set."),
  upstreams: z.array(z.strictObject({
    url: z.url({ protocol: /^https?$/ }).describe("OpenAI-compatible base URL, e.g. http://10.0.0.5:8000/v1 (requests go to <url>/chat/completions)."),
    apiKey: z.string().default("").describe("Bearer key this upstream expects (sent to it alone, never the client's key)."),
    apiKeyFile: z.string().default("").describe("File holding that key (read once at start, trimmed), so the secret need not sit in the config."),
    apiKeyEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).or(z.literal("")).default("").describe("Environment variable holding that key."),
    models: z.array(z.string().min(1)).min(1).describe("Model ids this upstream serves (the ids clients send)."),
  }).refine((u) => [u.apiKey, u.apiKeyFile, u.apiKeyEnv].filter(Boolean).length <= 1, "give at most one of apiKey, apiKeyFile, apiKeyEnv"))
    .default([]).describe("Gateway mode: OpenAI-compatible servers (vLLM, llama-server, another appliance) whose models this server fronts with its own guards. Config file only."),
  gateway: z.strictObject({
    firstByteTimeoutMs: positive.default(120_000).describe("Upstream: time from starting an attempt (connect included) to its response headers; a non-streamed answer's headers come only once it is generated, so this bounds its length too."),
    connectTimeoutMs: positive.default(3_000).describe("Upstream: time to open a TCP connection to it, checked (by a connect of its own) whenever no request to it succeeded in the last 5 s; past it the attempt fails and goes to another upstream."),
    idleTimeoutMs: positive.default(60_000).describe("Upstream: longest silence inside a streamed response before it is cut off as failed."),
    tokenPrompts: z.enum(["guard", "forward"]).default("guard").describe("Token-id prompts (/v1/completions) for upstream models. guard: turned into text by the upstream's POST /detokenize and read by the prompt guard (an upstream without it: 400 naming prompt); forward: sent as they are, unread by the prompt guard."),
    retries: z.number().int().min(0).max(10).default(2).describe("Extra attempts on another (or the same) upstream, only before any byte reached the client."),
    backoffMs: z.number().int().min(0).default(50).describe("First retry delay; doubled per retry (exponential backoff)."),
    backoffMaxMs: z.number().int().min(0).default(2_000).describe("Cap on one retry delay."),
    breakerFailures: positive.default(3).describe("Consecutive failures that open an upstream's circuit breaker."),
    breakerCooldownMs: positive.default(30_000).describe("How long an open breaker keeps the upstream out; then one request is let through as a half-open probe."),
    healthIntervalMs: z.number().int().min(0).default(10_000).describe("Active health check period (GET <url>/models); 0 = off."),
    healthTimeoutMs: positive.default(2_000).describe("Time a health check may take before it counts as failed."),
  }).prefault({}).describe("Gateway tunables (apply to every upstream)."),
  audit: z.boolean().default(true).describe("Write the hash-chained audit log (state dir audit.jsonl)."),
  memoryMax: z.string().regex(/^(\d+[KMGT]?|infinity|auto)$/).default("auto")
    .describe("systemd MemoryMax= for the service (install). auto: 75% of the machine's memory, measured at install."),
  cpuQuota: z.string().regex(/^(\d+%|auto)$/).default("auto")
    .describe("systemd CPUQuota= for the service (install). auto: every CPU of the machine (100% per CPU), measured at install."),
});

export type Config = z.infer<typeof configSchema>;
/** The settings a config file / env / flags may give; anything left out takes its default. */
export type ConfigInput = z.input<typeof configSchema>;
