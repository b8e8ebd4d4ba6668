/**
 * What scripts/bench-peer.ts drives: the compiled appliance and the peer llama-server as child processes on free
 * loopback ports, and the HTTP measurements both get in exactly the same way (same request bodies, same client).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { wordStartTokenIds } from "../src/engine/tiny-model";
import { hugePageChoice, reportsFreePages } from "../src/util/huge-pages";

/** The generated benchmark models (tiny-model.ts shapes, F32): "28" M and "155" M parameters, by --size. */
export const SHAPES: Record<string, { layers: number; embd: number; ff: number; heads: number }> = {
  "28": { layers: 4, embd: 768, ff: 2048, heads: 12 }, "155": { layers: 12, embd: 1024, ff: 2816, heads: 16 },
};

/** `n` rounds of `measure` on each side, alternating which goes first (AB BA AB…): each side's results, in order. */
export async function alternate<T>(n: number, measure: (side: "a" | "b") => Promise<T>): Promise<{ a: T[]; b: T[] }> {
  const out = { a: [] as T[], b: [] as T[] };
  for (let i = 0; i < n; i++) for (const side of i % 2 ? ["b", "a"] as const : ["a", "b"] as const) out[side].push(await measure(side));
  return out;
}

/** A running server under test. */
export interface Served { name: string; base: string; headers: Record<string, string>; proc: Bun.Subprocess; stop: () => Promise<void> }

/** A free loopback port (bound and released; fine for a benchmark, never for tests). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** Polls GET /health until 200; resolves with the ms since `t0`. */
export async function waitHealthy(base: string, t0: number, proc: Bun.Subprocess, timeoutMs = 300_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${base}: server exited ${proc.exitCode}`);
    try {
      const r = await fetch(`${base}/health`);
      await r.arrayBuffer();
      if (r.status === 200) return performance.now() - t0;
    } catch { /* not listening yet */ }
    await Bun.sleep(5);
  }
  throw new Error(`${base}: not healthy within ${timeoutMs} ms`);
}

/** The appliance's state dir with the model registered and an all-scopes key without limits. */
export function prepareAppliance(bin: string, model: string, dir: string): { stateDir: string; key: string } {
  const stateDir = path.join(dir, "state");
  const run = (args: string[]) => {
    const r = Bun.spawnSync([bin, ...args, "--state-dir", stateDir], { env: { PATH: "/usr/bin:/bin", HOME: dir } });
    if (r.exitCode !== 0) throw new Error(`appliance ${args.join(" ")}: ${r.stderr.toString()}`);
    return r.stdout.toString().trim();
  };
  if (!fs.existsSync(stateDir)) run(["models", "add", model]);
  const key = run(["keys", "create", "--name", `bench${Date.now()}${Math.random().toString(36).slice(2, 6)}`, "--scopes", "chat,completions,models",
    "--rpm", "0", "--tpm", "0", "--max-concurrent", "0"]);
  return { stateDir, key };
}

/** What may differ between appliance servers a benchmark starts (nothing else differs from a user's `appliance serve`). */
export interface ApplianceOptions {
  /** Extra environment, e.g. APPLIANCE_RESPONSE_SCAN__ACTION=off or APPLIANCE_LOG_LEVEL=debug. */
  env?: Record<string, string>;
  /** The name rows print (default "appliance"). */
  name?: string;
  /** Where its stdout (the log) goes; default: discarded. */
  logFile?: string;
}

/**
 * Starts the appliance as shipped (auth, guards, scanner, audit on) with the given threads (0: no --threads flag,
 * the default policy) and parallel sequences; `dir` holds its state dir (kept between starts) and is its HOME.
 */
export async function startAppliance(bin: string, model: string, dir: string, threads: number, parallel: number,
  opts: ApplianceOptions = {}): Promise<Served & { startMs: number }> {
  const { stateDir, key } = prepareAppliance(bin, model, dir);
  // Port 0, the port read from its own "listening" line: a port picked here and freed could be taken by anything
  // else on the machine (another test's server, a client's ephemeral port) before the server binds it.
  const logFile = opts.logFile ?? path.join(dir, `serve-${++serves}.log`);
  const { proc, t0 } = spawnLogged([bin, "serve", "--state-dir", stateDir, "--port", "0", ...(threads ? ["--threads", String(threads)] : []),
    "--parallel", String(parallel), "--ctx-size", "2048", "--max-queue", "64"], { PATH: "/usr/bin:/bin", HOME: dir, ...opts.env }, logFile);
  const base = `http://127.0.0.1:${await listeningPort(logFile, proc)}`;
  const startMs = await waitHealthy(base, t0, proc);
  return { name: opts.name ?? "appliance", base, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, proc, startMs,
    stop: () => stopServer(proc) };
}

let serves = 0;

/**
 * A server started with its stdout (the log) into `logFile`, registered in `started`; t0: just before the spawn. The
 * file is removed first: Bun writes a child's stdout into an existing file from its start without truncating it, so a
 * log file named again kept the earlier server's lines further down (its "listening" line gave a closed port).
 */
export function spawnLogged(cmd: string[], env: Record<string, string | undefined>, logFile: string): { proc: Bun.Subprocess; t0: number } {
  fs.rmSync(logFile, { force: true });
  const t0 = performance.now();
  const proc = Bun.spawn(cmd, { env, stdout: Bun.file(logFile), stderr: "ignore" });
  started.add(proc);
  return { proc, t0 };
}

/** The port in the appliance's `listening` log line (its stdout, written to `logFile`), once it is there. */
export async function listeningPort(logFile: string, proc: Bun.Subprocess, timeoutMs = 300_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const line = (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : "").split("\n").find((l) => l.includes('"msg":"listening"'));
    if (line) return Number(/"port":(\d+)/.exec(line)![1]);
    if (proc.exitCode !== null) throw new Error(`appliance exited ${proc.exitCode} before listening: ${fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(-2000) : ""}`);
    await Bun.sleep(5);
  }
  throw new Error(`appliance: no "listening" line in ${logFile} within ${timeoutMs} ms`);
}

/** Starts llama-server on the same model with the same threads and parallel sequences (2048 context per sequence). */
export async function startPeer(llamaServer: string, model: string, threads: number, parallel: number): Promise<Served & { startMs: number }> {
  const port = freePort();
  const t0 = performance.now();
  const proc = Bun.spawn([llamaServer, "-m", model, "--host", "127.0.0.1", "--port", String(port), "-t", String(threads), "-tb", String(threads),
    "-np", String(parallel), "-c", String(2048 * parallel), "--no-webui", "--log-disable"], { stdout: "ignore", stderr: "ignore" });
  started.add(proc);
  const base = `http://127.0.0.1:${port}`;
  const startMs = await waitHealthy(base, t0, proc);
  // Its logs are off (they would cost it time), so the port is picked here: make sure what answered is this process
  // (something else on the machine may have taken the port first, and then our server has exited or is exiting).
  if (!listensOn(proc.pid, port)) {
    await stopServer(proc);
    throw new Error(`llama-server: port ${port} answered but is not held by the llama-server started on it (taken by another process)`);
  }
  return { name: "llama-server", base, headers: { "content-type": "application/json" }, proc, startMs, stop: () => stopServer(proc) };
}

/** Whether process `pid` holds a listening TCP socket on port `port` (Linux /proc; true where there is no /proc/net/tcp). */
export function listensOn(pid: number, port: number): boolean {
  if (!fs.existsSync("/proc/net/tcp")) return true;
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try { text = fs.readFileSync(table, "utf8"); } catch { continue; }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/); // sl local rem st … inode (field 9)
      if (f[1]?.endsWith(`:${hex}`) && f[3] === "0A") inodes.add(f[9]!);
    }
  }
  let fds: string[];
  try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { return false; } // it has exited
  return fds.some((fd) => { try { return inodes.has(/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? ""); } catch { return false; } });
}

/** Stops a server a benchmark started: SIGTERM, SIGKILL if it has not exited within 10 s. */
export async function stopServer(proc: Bun.Subprocess) {
  started.delete(proc);
  proc.kill("SIGTERM");
  const killer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  await proc.exited;
  clearTimeout(killer);
}

/** The tiny model's end tokens (</s> = 2, <|im_end|> = 260): banned so every run decodes exactly max_tokens. */
/**
 * Puts `file` in the page cache the way a user's model is there: its pages dropped (coreutils dd, iflag=nocache) and
 * the file read through once, as `models add`'s hash reads it. A model the benchmark has just written (or `models add`
 * has just copied into a state dir) stays in the page cache as written, and a server's first evaluation of it then
 * reads faster than on a model the machine has had for a while. Call it on the file each server maps, just before it
 * starts. Where dd cannot drop the pages, says so and leaves the file as it is.
 */
export function asUsersHaveIt(file: string): void {
  const fd = fs.openSync(file, "r"), buf = Buffer.alloc(1 << 20);
  try {
    fs.fsyncSync(fd); // dirty pages are not dropped
    const r = Bun.spawnSync(["dd", `if=${file}`, "iflag=nocache", "count=0", "status=none"], { stderr: "pipe" });
    if (r.exitCode !== 0) console.error(`!!! ${file} left in the page cache as it is (dd iflag=nocache: ${r.stderr.toString().trim() || `exit ${r.exitCode}`})`);
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    fs.closeSync(fd);
  }
}

export const NO_END = { "2": -100, "260": -100 };

export interface Completion { ms: number; ttftMs: number; completionTokens: number; promptTokens: number; text: string }

/**
 * fetch, sent again once when a kept-alive connection turns out closed before any answer (ECONNRESET): while the
 * other server of an A/B pair runs a long measure, this one's idle connection times out (llama-server's HTTP library
 * closes it after 5 s), and the client's pool still hands it out (seen once in a 155 M bench-peer run, which then
 * ended). The retry opens a new connection; the failed try's few ms stay in that sample's time.
 */
async function post(url: string, init: RequestInit): Promise<Response> {
  try { return await fetch(url, init); } catch (e) {
    if ((e as { code?: string }).code !== "ECONNRESET") throw e;
    return fetch(url, init);
  }
}

/**
 * NO_END and a push towards the vocabulary's word-start tokens (tiny-model.ts wordStartTokenIds): the random model then
 * writes words separated by spaces, as real text is, where its own output is long runs with no space.
 */
export const WORDS_BIAS: Record<string, number> = { ...Object.fromEntries(wordStartTokenIds().map((id) => [String(id), 50])), ...NO_END };

/**
 * One greedy /v1/completions request, streamed or not, timed from send to last byte (and to the first text).
 * `bias`: the request's logit_bias (NO_END, or WORDS_BIAS for word-separated output).
 */
export async function complete(s: Served, prompt: string, maxTokens: number, stream = false, bias: Record<string, number> = NO_END): Promise<Completion> {
  const body = { model: "bench", prompt, max_tokens: maxTokens, temperature: 0, logit_bias: bias, stream, ...(stream && { stream_options: { include_usage: true } }) };
  const t0 = performance.now();
  const res = await post(`${s.base}/v1/completions`, { method: "POST", headers: s.headers, body: JSON.stringify(body) });
  if (!stream) {
    const j = await res.json() as { choices?: { text: string }[]; usage?: { completion_tokens: number; prompt_tokens: number }; error?: unknown };
    if (!res.ok || !j.usage) throw new Error(`${s.name}: ${res.status} ${JSON.stringify(j).slice(0, 300)}`);
    const ms = performance.now() - t0;
    return { ms, ttftMs: ms, completionTokens: j.usage.completion_tokens, promptTokens: j.usage.prompt_tokens, text: j.choices?.[0]?.text ?? "" };
  }
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "", ttft = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    if (!ttft && /"text":"[^"]/.test(buf)) ttft = performance.now() - t0;
  }
  const ms = performance.now() - t0;
  const usage = /"completion_tokens":(\d+),"prompt_tokens":(\d+)|"prompt_tokens":(\d+),"completion_tokens":(\d+)/.exec(buf);
  const completionTokens = Number(usage?.[1] ?? usage?.[4] ?? 0), promptTokens = Number(usage?.[2] ?? usage?.[3] ?? 0);
  const text = [...buf.matchAll(/"text":"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string).join("");
  return { ms, ttftMs: ttft || ms, completionTokens, promptTokens, text };
}

/** One /v1/chat/completions request with max_tokens 1 (what a classifier-style client does); ms to last byte. */
export async function chatOne(s: Served): Promise<number> {
  const t0 = performance.now();
  const res = await post(`${s.base}/v1/chat/completions`, { method: "POST", headers: s.headers,
    body: JSON.stringify({ model: "bench", messages: [{ role: "user", content: wordsPrompt(4) }], max_tokens: 1, temperature: 0 }) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`${s.name} chat: ${res.status}`);
  return performance.now() - t0;
}

/** GET /v1/models requests per second from 8 concurrent clients over `ms`. */
export async function modelsRps(s: Served, ms = 2000): Promise<number> {
  let n = 0;
  const until = performance.now() + ms;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (performance.now() < until) { await (await fetch(`${s.base}/v1/models`, { headers: s.headers })).arrayBuffer(); n++; }
  }));
  return n / (ms / 1000);
}

const VOCAB = "the of and to in is you that it he was for on are as with his they at be this have from or one had by".split(" ");
let calls = 0;
/**
 * `words` space-separated words from the tiny model's vocabulary, for prompts that grow with `words` (the tiny
 * tokenizer makes ~1.6 tokens of a word: 511 words are ~814 tokens; exactPromptIds gives an exact count).
 * No two calls give the same prompt, and consecutive ones differ from the first word: the first words spell the
 * call count in base 27, least significant first (27^3 calls before a 3-word prefix repeats), the rest follow on.
 * So no server can answer from a cached prompt (llama-server keeps earlier prompts' state in RAM, --cache-ram,
 * and reuses a repeated one without evaluating it; the appliance reuses a sequence's last prompt within one key). Before, the words began at the call
 * count mod 27, so only 27 prompts of each length existed and llama-server answered repeats from its cache.
 */
export function wordsPrompt(words: number): string {
  let n = calls++;
  const start = n % VOCAB.length;
  return Array.from({ length: words }, (_, i) => {
    if (i < 3) { const w = VOCAB[n % VOCAB.length]!; n = Math.floor(n / VOCAB.length); return w; }
    return VOCAB[(start + i * 7) % VOCAB.length]!;
  }).join(" ");
}

/**
 * Exactly `n` token ids of the vocabulary's words, from the model's own tokenizer, starting at another word on each
 * call (no reused prefix): a prompt of a known token count, e.g. 511 ids + BOS for llama-bench's pp512.
 */
export function exactPromptIds(tokenize: (text: string) => number[], n: number): number[] {
  const ids = tokenize(wordsPrompt(n));
  if (ids.length < n) throw new Error(`prompt text gave only ${ids.length} tokens`);
  return ids.slice(0, n);
}

/** Every server started, so an interrupted run leaves none behind. */
export const started = new Set<Bun.Subprocess>();
process.on("exit", () => { for (const p of started) p.kill("SIGKILL"); });
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

/** Per thread of process `pid` (Linux /proc; empty elsewhere): name, CPU ms (user + system) and voluntary context switches. */
export function threadStats(pid: number): Map<number, { name: string; cpuMs: number; sleeps: number }> {
  const out = new Map<number, { name: string; cpuMs: number; sleeps: number }>();
  let tids: string[];
  try { tids = fs.readdirSync(`/proc/${pid}/task`); } catch { return out; }
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from 3 (state) on: utime is 14, stime 15
      const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      out.set(Number(tid), { name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
        cpuMs: (Number(f[11]) + Number(f[12])) * tick, sleeps: Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0) });
    } catch { /* the thread ended */ }
  }
  return out;
}

/**
 * What `pid`'s threads did between two threadStats snapshots, per `tokens`: CPU ms of the main thread (the JS thread
 * of Bun; llama-server's main thread is its decode thread), CPU ms of all other threads, their voluntary context
 * switches (a thread that sleeps and is woken again, e.g. at an OpenMP barrier after a short spin), and how many of
 * them ran at least 10 ms.
 */
export function threadDelta(pid: number, a: ReturnType<typeof threadStats>, b: ReturnType<typeof threadStats>, tokens: number) {
  let mainMs = 0, otherMs = 0, sleeps = 0, busy = 0;
  for (const [tid, t] of b) {
    const before = a.get(tid) ?? { cpuMs: 0, sleeps: 0 };
    const ms = t.cpuMs - before.cpuMs;
    if (tid === pid) { mainMs = ms; continue; }
    otherMs += ms; sleeps += t.sleeps - before.sleeps;
    if (ms >= 10) busy++;
  }
  return { mainMs: mainMs / tokens, otherMs: otherMs / tokens, sleeps: sleeps / tokens, busy };
}

/**
 * The CPU the figures were taken on: its model name and the vector extensions that decide which of the embedded
 * engine's CPU variants loads (the same VM has come up on an AVX-512 host, where the `zen4` variant loads, and on an
 * AVX2-only one, where `haswell` does) and how llama-server's -march=native build runs. Every benchmark prints it.
 */
export function cpuLine(): string {
  let info = "";
  try { info = fs.readFileSync("/proc/cpuinfo", "utf8"); } catch { /* not Linux: the model name from os.cpus() */ }
  const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(info)?.[1]?.split(/\s+/) ?? []);
  const vector = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile"].filter((f) => flags.has(f));
  return `cpu: ${os.cpus()[0]?.model ?? "unknown"}${flags.size ? `, ${vector.join(" ") || "no AVX2"}` : ""}`;
}

/**
 * The environment systemd/appliance.service gives serve on this machine for memory pages: the huge-page tunable
 * `appliance install` writes into the unit (util/huge-pages.ts hugePageChoice; tests/live/service.test.ts reads it
 * from the running service), so serve does not re-execute itself. `line` says what it is and what was measured.
 */
export function unitPageEnv(): { env: { GLIBC_TUNABLES: string }; line: string } {
  const { huge, cost } = hugePageChoice();
  const env = { GLIBC_TUNABLES: `glibc.malloc.hugetlb=${huge ? 1 : 0}` };
  const measured = cost ? `; first touch of 2 MiB now: ${cost.hugeMs.toFixed(2)} ms as a huge page, ${cost.smallMs.toFixed(2)} ms in 4 KiB pages` : "";
  return { env, line: `the unit here: ${env.GLIBC_TUNABLES} (free page reporting to a hypervisor: ${reportsFreePages() ? "yes" : "no"}${measured})` };
}

/** `K=V,K2=V2` (a benchmark's --env option) as an environment object. */
export const envOf = (list: string): Record<string, string> =>
  Object.fromEntries(list.split(",").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const load1 = () => os.loadavg()[0]!;
