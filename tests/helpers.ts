/** Shared test fixtures: the real tiny model, the real engine, the real app. No mocks of our own parts. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseConfig } from "../src/config/load";
import type { ConfigInput } from "../src/config/schema";
import { LlamaEngine } from "../src/engine/llama";
import type { LlamaEngineOptions } from "../src/engine/llama-load";
import { CHATML_TEMPLATE, makeTinyModel, type TinyModelLook, type TinyModelOptions } from "../src/engine/tiny-model";
import { KeyStore, keysFilePath, type NewKeyOptions } from "../src/guards/keys";
import { AuditLog } from "../src/log/audit";
import { createLogger, silentLogger, type Logger } from "../src/log/logger";
import type { createApp } from "../src/server/app";
import { createServer } from "../src/server/create-server";

/** Every temp dir made through tmpDir; tests/cleanup.ts (a preload) removes them after the whole run, since the tiny model is shared across files. */
export const madeTmpDirs: string[] = [];
export const tmpDir = (prefix = "appliance-test-") => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  madeTmpDirs.push(dir);
  return dir;
};

/** The tiny model, written once per test process. */
const models = new Map<string, Promise<string>>();
export function tinyModel(opts: Partial<TinyModelOptions> = {}, look: TinyModelLook = {}): Promise<string> {
  const key = JSON.stringify([opts, look]);
  if (!models.has(key)) {
    const file = path.join(tmpDir("appliance-model-"), "tiny.gguf");
    models.set(key, makeTinyModel(file, opts, look).then(() => file));
  }
  return models.get(key)!;
}

/**
 * A reasoning model's look: a template that opens the thought in the generation prompt (as DeepSeek-R1's and Qwen3's
 * thinking releases do) and renders an echoed thought as `<think>…</think>`, with both as control tokens.
 * node-llama-cpp reads thought segments from it (openOnResponseStart). Token ids: `<think>` 261, `</think>` 262.
 */
export const THINKING_TEMPLATE =
  "{%- for m in messages -%}{%- if m.role == 'assistant' -%}<|im_start|>assistant\n" +
  "{% if m.reasoning_content is defined and m.reasoning_content %}<think>{{ m.reasoning_content }}</think>{% endif %}{{ m.content }}<|im_end|>\n" +
  "{% else -%}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif -%}{%- endfor -%}" +
  "{%- if add_generation_prompt %}<|im_start|>assistant\n<think>{% endif -%}";
export const THINK_END_TOKEN = 262;
export const thinkingModel = () => tinyModel({}, { template: THINKING_TEMPLATE, controlTokens: ["<think>", "</think>"] });

/**
 * A Hermes-style tool template written for the tests (the tool's text written as it is), whose assistant turn adds
 * its text to a string: it fails on node-llama-cpp's own tool messages (an assistant call turn has no text there), as
 * Qwen 3's does, so node-llama-cpp writes the history itself, results and all.
 */
export const RAW_TOOL_TEMPLATE =
  "{%- for m in messages %}{%- if m.role == 'assistant' %}<|im_start|>assistant\n{{ '' + m.content }}" +
  "{%- for c in m.tool_calls or [] %}<tool_call>\n{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}\n</tool_call>{%- endfor %}<|im_end|>\n" +
  "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n" +
  "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif %}{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}";
export const RAW_TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"];
export const rawToolModel = () => tinyModel({}, { template: RAW_TOOL_TEMPLATE, controlTokens: RAW_TOOL_TOKENS });
/**
 * A Hermes-style tool template (written for the tests) whose call syntax node-llama-cpp reads from it, so it renders
 * real tool messages through it; `body` writes the tool message's content (`m.content`).
 */
export const hermesToolTemplate = (body: string) => RAW_TOOL_TEMPLATE.replace("{{ '' + m.content }}", "{{ m.content }}").replace("{{ m.content }}\n</tool_response>", `${body}\n</tool_response>`);

/** A Llama 3.1-style template (system preamble with the knowledge and today's dates), written for the tests; node-llama-cpp runs it on its built-in Llama 3.1 format. */
export const LLAMA31_TEMPLATE = "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] | trim %}{%- set messages = messages[1:] %}" +
  "{%- else %}{%- set system_message = '' %}{%- endif %}{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{{- 'Cutting Knowledge Date: December 2023\\n' }}" +
  "{{- 'Today Date: ' + (date_string if date_string is defined else '26 Jul 2024') + '\\n\\n' }}{{- system_message }}{{- '<|eot_id|>' }}" +
  "{%- for m in messages %}{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";
export const LLAMA31_TOKENS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"];

/**
 * A copy of the tiny model at `file` whose chat template is `template` (written over the ChatML template in place,
 * padded with a Jinja comment to the same length, so no offset in the GGUF moves).
 */
export async function withTemplate(template: string, file: string): Promise<string> {
  const buf = fs.readFileSync(await tinyModel());
  const at = buf.indexOf(Buffer.from(CHATML_TEMPLATE));
  if (at <= 0) throw new Error("the tiny model holds no ChatML template to replace");
  const room = CHATML_TEMPLATE.length - template.length - 4;
  if (room < 0) throw new Error(`a template of ${template.length} characters does not fit in the ${CHATML_TEMPLATE.length} of ChatML`);
  buf.write(template + `{#${" ".repeat(room)}#}`, at, "utf8");
  fs.writeFileSync(file, buf);
  return file;
}

/**
 * Polls `probe` (sync or async) until it returns something other than undefined, and returns that; fails naming
 * `what` once `ms` have passed. The 25 ms between polls is a poll interval, not a wait for time: the deadline bounds it.
 */
export async function until<T>(probe: () => T | undefined | Promise<T | undefined>, ms = 20_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(25);
  }
}

type LogLine = Record<string, unknown>;
/**
 * A log sink tests can read: every pino line, parsed. `line(match, from)` resolves with the first line at index
 * `from` or later that matches, as soon as it is written (waits on the write, never polls).
 */
export function memoryLogger(): { log: Logger; lines: LogLine[]; line: (match: (l: LogLine) => boolean, from?: number) => Promise<LogLine> } {
  const lines: LogLine[] = [];
  const waiters = new Set<(l: LogLine) => boolean>();
  const write = (s: string) => {
    const l = JSON.parse(s) as LogLine;
    lines.push(l);
    for (const w of [...waiters]) if (w(l)) waiters.delete(w);
    return true;
  };
  const log = createLogger("info", { write } as never);
  const line = (match: (l: LogLine) => boolean, from = 0) => new Promise<LogLine>((resolve) => {
    const seen = lines.slice(from).find(match);
    if (seen) return resolve(seen);
    waiters.add((l) => { if (!match(l)) return false; resolve(l); return true; });
  });
  return { log, lines, line };
}

export interface TestAppOptions {
  config?: ConfigInput;
  keys?: NewKeyOptions[];
  clock?: () => number;
  log?: Logger;
  engine?: LlamaEngine;
}

/**
 * The tiny model's engine, on one thread: the embedded libraries (no OpenMP) start a worker per decode step and spin
 * at every barrier with two, so two threads ran the tiny model ~5x slower here (openai.test.ts's long no-max_tokens
 * test: 11.8 s on 2 threads, 2.4 s on 1), and with a CPU burner and a second test run beside the suite that test passed
 * its 120 s limit; one thread took the same 2.5 s with the burner. The thread tests (thread-governor, thread-tuner,
 * the binary's) choose their own counts.
 */
export async function makeEngine(config: { path?: string; id?: string; parallel?: number; maxQueue?: number; ctxSize?: number; promptCache?: boolean;
  chatTemplate?: LlamaEngineOptions["chatTemplate"] } = {}) {
  return LlamaEngine.create({
    models: [{ id: config.id ?? "tiny", path: config.path ?? await tinyModel() }], threads: 1, ctxSize: config.ctxSize ?? 2048,
    parallel: config.parallel ?? 2, maxQueue: config.maxQueue ?? 8, promptCache: config.promptCache, chatTemplate: config.chatTemplate, gpu: false, log: silentLogger(),
  });
}

/**
 * Calls `onDecode` each time the tiny model's context queues a decode (node-llama-cpp's own `_decodeTokens`, spied:
 * the call goes on unchanged), so a test can tell what had happened before each decode step.
 */
export function spyDecodes(engine: LlamaEngine, onDecode: (args: { tokens: number[]; logits: boolean[] }) => void) {
  const context = (engine as unknown as { loaded: Map<string, { context: Record<string, unknown> }> }).loaded.get("tiny")!.context;
  const decode = context._decodeTokens as (args: unknown, mapper: unknown) => Promise<unknown>;
  context._decodeTokens = (args: { tokens: number[]; logits: boolean[] }, mapper: unknown) => { onDecode(args); return decode.call(context, args, mapper); };
}

/** The whole app on the tiny model, with one key per entry in `keys` (default: one full-access key). */
export async function makeApp(opts: TestAppOptions = {}) {
  const stateDir = tmpDir();
  const config = parseConfig({ stateDir, model: [await tinyModel()], ...opts.config } as Record<string, unknown>);
  const clock = opts.clock ?? Date.now;
  const store = new KeyStore(keysFilePath(stateDir), clock);
  const keys = (opts.keys ?? [{ name: "test", scopes: ["chat", "completions", "embeddings", "models", "admin"] }]).map((k) => store.create(k).key);
  const engine = opts.engine ?? await makeEngine({ parallel: config.parallel, maxQueue: config.maxQueue, ctxSize: config.ctxSize, promptCache: config.promptCache });
  const log = opts.log ?? silentLogger();
  const audit = new AuditLog(path.join(stateDir, "audit.jsonl"));
  const { app } = await createServer(config, { log, engine, keys: store, audit, clock });
  return { app, engine, keys, key: keys[0]!, store, stateDir, config, auditFile: path.join(stateDir, "audit.jsonl") };
}

/** Listens on a free loopback port; returns the base URL. */
export function listenApp(app: ReturnType<typeof createApp>): string {
  app.listen({ hostname: "127.0.0.1", port: 0 });
  return `http://127.0.0.1:${app.server!.port}`;
}

export const req = (pathname: string, init: RequestInit & { key?: string; json?: unknown } = {}) => {
  const headers = new Headers(init.headers);
  if (init.key) headers.set("authorization", `Bearer ${init.key}`);
  if (init.json !== undefined) headers.set("content-type", "application/json");
  return new Request(`http://localhost${pathname}`, {
    ...init, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
    method: init.method ?? (init.json !== undefined || init.body ? "POST" : "GET"),
  });
};

/** The compiled binary of the sources under test, built once per test process (npm test builds it first). */
let binary: Promise<string> | undefined;
export function builtBinary(): Promise<string> {
  binary ??= (async () => {
    if (process.env.APPLIANCE_BINARY) return process.env.APPLIANCE_BINARY;
    const { build } = await import("../scripts/build");
    return build("linux-x64", path.join(import.meta.dir, "..", "dist", "appliance"));
  })();
  return binary;
}

export { untilListening } from "../scripts/serve-listening";

/**
 * The text logprob tokens spell: a token that is part of a UTF-8 character is written as OpenAI writes it,
 * "bytes:\xNN…", and spells its bytes.
 */
export function tokenText(tokens: readonly string[]): string {
  const bytes = tokens.flatMap((t) => (t.startsWith("bytes:") ? t.slice(6).split("\\x").filter(Boolean).map((h) => parseInt(h, 16)) : [...Buffer.from(t)]));
  return Buffer.from(bytes).toString();
}

/**
 * Runs `main(argv)` of the sources in a fresh process (tests that need what one command's run did to the whole
 * process: the modules it evaluated, the runtime calls it made). `setup` is code run before main.ts is imported;
 * `report` an expression, with `code` (main's exit code) in scope, whose JSON comes back as `result`; `out` is the
 * process's whole stdout. The probe exits once it reported, as the binary's entry does; one that never reports is
 * killed after `timeoutMs` and this throws.
 */
export function probeMain<T>(argv: string[], opts: { report: string; setup?: string; env?: Record<string, string>; timeoutMs?: number }): { result: T; out: string } {
  const root = path.resolve(import.meta.dir, "..");
  const script = path.join(tmpDir(), "probe.ts");
  fs.writeFileSync(script, `${opts.setup ?? ""}
const { main } = await import(${JSON.stringify(path.join(root, "src/main.ts"))});
const code = await main(${JSON.stringify(argv)});
console.log("@@" + JSON.stringify(${opts.report}));
process.exit(0);\n`);
  const r = Bun.spawnSync([process.execPath, script], { cwd: root, env: { ...process.env, NODE_ENV: "production", ...opts.env },
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs, killSignal: "SIGKILL" as const } : {}) });
  const out = r.stdout.toString();
  const line = out.split("\n").find((l) => l.startsWith("@@"));
  if (!line) throw new Error(`probe printed no result (exit ${r.exitCode}): ${out}${r.stderr.toString()}`);
  return { result: JSON.parse(line.slice(2)) as T, out };
}
