/**
 * The compiled binary, copied alone into an empty directory, set up with its own
 * CLI (models add, keys create) and serving on a free loopback port: what the
 * client conformance tests talk to. Behaviour that differs between the source
 * tree and the binary (embedded assets) is only caught here.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";

export interface BinaryServer {
  baseURL: string;
  /** A key with every scope. */
  key: string;
  /** One key per entry of keyFlags (e.g. ["--rpm", "1"]). */
  keys: string[];
  stateDir: string;
  log: () => string;
  /** What it wrote to stderr so far. */
  errLog: () => string;
  stop: () => Promise<number>;
  /** Sends a signal to the server process (SIGKILL: a crash, as the gateway tests need). */
  kill: (signal: NodeJS.Signals) => void;
}

/**
 * Starts `appliance serve` on the tiny model (or `modelFile`, served as "tiny"); extra flags go to serve (e.g.
 * ["--parallel", "1"]), extra variables to its environment.
 */
export async function startBinary(flags: string[] = [], keyFlags: string[][] = [], extraEnv: Record<string, string> = {}, modelFile?: string): Promise<BinaryServer> {
  const dir = tmpDir("appliance-conf-");
  const bin = path.join(dir, "appliance");
  fs.copyFileSync(await builtBinary(), bin);
  fs.chmodSync(bin, 0o755);
  const stateDir = path.join(dir, "state");
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const run = (args: string[]) => {
    const r = Bun.spawnSync([bin, ...args], { cwd: dir, env });
    if (r.exitCode !== 0) throw new Error(`appliance ${args.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
    return r.stdout.toString().trim();
  };
  const model = path.join(dir, "tiny.gguf");
  fs.copyFileSync(modelFile ?? await tinyModel(), model);
  run(["models", "add", model, "--state-dir", stateDir]);
  const key = run(["keys", "create", "--name", "conformance", "--scopes", "chat,completions,embeddings,models,admin", "--state-dir", stateDir]);
  const keys = keyFlags.map((f, i) => run(["keys", "create", "--name", `extra${i}`, ...f, "--state-dir", stateDir]));

  const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "2", ...flags],
    { cwd: dir, stdout: "pipe", stderr: "pipe", env: { ...env, ...extraEnv } });
  const { port, log, errLog } = await untilListening(proc);
  return {
    baseURL: `http://127.0.0.1:${port}`, key, keys, stateDir,
    log, errLog,
    kill: (signal) => proc.kill(signal),
    stop: async () => {
      proc.kill("SIGTERM");
      const code = await proc.exited;
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * The binary on the tiny model with an official openai SDK client on its full-access key, for a whole test file:
 * registers the beforeAll that starts it and the afterAll that stops it (exit 0 expected); read the fields in tests.
 */
export function sdkBinary(flags: string[] = [], keyFlags: string[][] = []): { server: BinaryServer; client: OpenAI } {
  const s = {} as { server: BinaryServer; client: OpenAI };
  beforeAll(async () => {
    s.server = await startBinary(flags, keyFlags);
    s.client = new OpenAI({ apiKey: s.server.key, baseURL: `${s.server.baseURL}/v1`, maxRetries: 0 });
  }, 120_000);
  afterAll(async () => { expect(await s.server.stop()).toBe(0); });
  return s;
}

/**
 * Fills a `--parallel 1 --max-queue 0` server: starts a long greedy stream and
 * resolves once its first token arrived (so the one slot is held), leaving the
 * next request a queue-full 503. Call the returned function to abort it.
 */
export async function occupySlot(server: BinaryServer): Promise<() => void> {
  const abort = new AbortController();
  const res = await fetch(`${server.baseURL}/v1/chat/completions`, {
    method: "POST", signal: abort.signal,
    headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "go" }], max_tokens: 1800, temperature: 0, stream: true }),
  });
  if (res.status !== 200) throw new Error(`the long stream got ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  // The first non-empty content delta: the generation is running in the slot.
  while (!/"content":"[^"]/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the long stream ended before its first token: ${text}`);
    text += decoder.decode(value, { stream: true });
  }
  return () => abort.abort();
}
