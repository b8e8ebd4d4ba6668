/**
 * The parts of scripts/load.ts: start the compiled binary on a generated tiny
 * model, drive it with many concurrent clients over mixed routes (streaming
 * included), classify every answer, and sample the server's RSS. Used by the
 * script and by tests/ops/load.test.ts (a small configuration of the same run).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { makeTinyModel } from "../src/engine/tiny-model";

export interface Server { url: string; key: string; limitedKey: string; pid: number; dir: string; stop: () => Promise<number> }

/** `appliance serve` (the binary) in a fresh temp dir, on port 0, with one unlimited key and one with default limits. */
export async function startServer(binary: string, serveFlags: string[] = []): Promise<Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-load-"));
  const stateDir = path.join(dir, "state");
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const run = (args: string[]) => {
    const r = Bun.spawnSync([binary, ...args, "--state-dir", stateDir], { cwd: dir, env });
    if (r.exitCode !== 0) throw new Error(`appliance ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr}`);
    return r.stdout.toString().trim();
  };
  const model = path.join(dir, "tiny.gguf");
  await makeTinyModel(model);
  run(["models", "add", model]);
  const scopes = ["--scopes", "chat,completions,embeddings,models,metrics"];
  const key = run(["keys", "create", "--name", "load", ...scopes, "--rpm", "0", "--tpm", "0", "--max-concurrent", "0"]);
  const limitedKey = run(["keys", "create", "--name", "limited", ...scopes]);
  const proc = Bun.spawn([binary, "serve", "--state-dir", stateDir, "--port", "0", "--log-level", "warn", ...serveFlags],
    { cwd: dir, env, stdout: "ignore", stderr: "inherit" });
  // The log stays at warn (no line per request to pipe); the port is read from /proc once the server binds.
  const port = await portOf(proc.pid);
  return {
    url: `http://127.0.0.1:${port}`, key, limitedKey, pid: proc.pid, dir,
    stop: async () => {
      proc.kill("SIGTERM");
      const code = await proc.exited;
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** The TCP port a process listens on, from /proc/net/tcp{,6} and its socket inodes (polled until it binds). */
async function portOf(pid: number, deadlineMs = 120_000): Promise<number> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    let inodes: Set<string>;
    try {
      inodes = new Set(fs.readdirSync(`/proc/${pid}/fd`).map((f) => { try { return fs.readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return ""; } })
        .map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter((x): x is string => !!x));
    } catch { throw new Error(`server ${pid} exited before listening`); }
    for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      for (const line of fs.readFileSync(file, "utf8").split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f[3] === "0A" && inodes.has(f[9]!)) return parseInt(f[1]!.split(":")[1]!, 16);
      }
    }
    await Bun.sleep(100);
  }
  throw new Error("server did not listen in time");
}

/** Resident set size of a process in bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

export type Outcome = "2xx" | "429" | "503" | "4xx" | "5xx" | "reset" | "timeout" | "stream_incomplete";

export interface Tally {
  outcomes: Record<Outcome, number>;
  /** Latency (ms) of 2xx answers by route name. */
  latency: Record<string, number[]>;
  /** Answers by route name and outcome. */
  byRoute: Record<string, Partial<Record<Outcome, number>>>;
  /** First few unexpected answers, to say what went wrong. */
  samples: string[];
}

export const newTally = (): Tally => ({
  outcomes: { "2xx": 0, "429": 0, "503": 0, "4xx": 0, "5xx": 0, reset: 0, timeout: 0, stream_incomplete: 0 },
  latency: {}, byRoute: {}, samples: [],
});

interface Call { name: string; method: string; path: string; body?: unknown; stream?: boolean }

const chat = (stream: boolean, maxTokens: number) => ({ model: "tiny", stream, max_tokens: maxTokens, messages: [{ role: "user", content: "Say something short." }] });

/** The mix of routes (weights sum to 100): cheap reads, generations (half streamed), embeddings. */
export function mix(maxTokens: number): [number, Call][] {
  return [
    [29, { name: "models", method: "GET", path: "/v1/models" }],
    [10, { name: "health", method: "GET", path: "/health" }],
    [10, { name: "ready", method: "GET", path: "/ready" }],
    [1, { name: "metrics", method: "GET", path: "/metrics" }],
    [20, { name: "chat", method: "POST", path: "/v1/chat/completions", body: chat(false, maxTokens) }],
    [20, { name: "chat_stream", method: "POST", path: "/v1/chat/completions", body: chat(true, maxTokens), stream: true }],
    [5, { name: "completions", method: "POST", path: "/v1/completions", body: { model: "tiny", prompt: "Once", max_tokens: maxTokens } }],
    [5, { name: "embeddings", method: "POST", path: "/v1/embeddings", body: { model: "tiny", input: "hello" } }],
  ];
}

function pick(calls: [number, Call][], r: number): Call {
  let acc = 0;
  for (const [w, c] of calls) if ((acc += w) > r * 100) return c;
  return calls[calls.length - 1]![1];
}

/**
 * One request: its outcome and, when it succeeded, its latency. Returns how long to wait before the next one:
 * a 429 or 503 carries Retry-After, which a well-behaved client honours (capped at 1 s, jittered), so a refused
 * client does not spin at memory speed.
 */
export async function once(url: string, key: string, call: Call, tally: Tally, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  let outcome: Outcome;
  let retryAfter = 0;
  try {
    const r = await fetch(url + call.path, {
      method: call.method, signal: AbortSignal.timeout(timeoutMs),
      headers: { authorization: `Bearer ${key}`, ...(call.body ? { "content-type": "application/json" } : {}) },
      ...(call.body ? { body: JSON.stringify(call.body) } : {}),
    });
    const text = await r.text();
    const s = r.status;
    if (s === 429 || s === 503) retryAfter = Math.min(1, Number(r.headers.get("retry-after") ?? 1) || 1) * (0.5 + Math.random() / 2) * 1000;
    outcome = s < 300 ? "2xx" : s === 429 ? "429" : s === 503 ? "503" : s < 500 ? "4xx" : "5xx";
    if (outcome === "2xx" && call.stream && !text.trimEnd().endsWith("data: [DONE]")) outcome = "stream_incomplete";
    if (outcome !== "2xx" && outcome !== "429" && outcome !== "503" && tally.samples.length < 5) tally.samples.push(`${call.name} ${s}: ${text.slice(0, 200)}`);
  } catch (e) {
    const err = e as Error & { code?: string };
    outcome = err.name === "TimeoutError" ? "timeout" : "reset";
    if (tally.samples.length < 5) tally.samples.push(`${call.name}: ${err.name} ${err.code ?? ""} ${err.message}`.slice(0, 200));
  }
  tally.outcomes[outcome]++;
  const route = (tally.byRoute[call.name] ??= {});
  route[outcome] = (route[outcome] ?? 0) + 1;
  if (outcome === "2xx") (tally.latency[call.name] ??= []).push(performance.now() - t0);
  return retryAfter;
}

export interface DriveOptions { url: string; keys: string[]; connections: number; seconds: number; maxTokens: number; timeoutMs?: number }

/** `connections` clients, each sending one request after another over the mix until the time is up. */
export async function drive(o: DriveOptions, tally = newTally()): Promise<{ tally: Tally; requests: number; seconds: number }> {
  const calls = mix(o.maxTokens);
  const end = performance.now() + o.seconds * 1000;
  const t0 = performance.now();
  let requests = 0;
  await Promise.all(Array.from({ length: o.connections }, async (_, i) => {
    const key = o.keys[i % o.keys.length]!;
    // Client i opens with route i of the mix, so every route is exercised even in a short run (a 1%-weight
    // route could otherwise be missed: about 1 short CI run in 4 under a CPU burner had no /metrics call).
    for (let first = true; performance.now() < end; first = false) {
      const call = first && i < calls.length ? calls[i]![1] : pick(calls, Math.random());
      const wait = await once(o.url, key, call, tally, o.timeoutMs ?? 120_000);
      requests++;
      if (wait) await Bun.sleep(Math.min(wait, Math.max(0, end - performance.now())));
    }
  }));
  return { tally, requests, seconds: (performance.now() - t0) / 1000 };
}

/** Sequential GET /health probes every `everyMs` until `stop` resolves: latency (ms) of each. */
export async function probeHealth(url: string, stop: Promise<unknown>, everyMs = 20): Promise<number[]> {
  let done = false;
  void stop.then(() => { done = true; });
  const out: number[] = [];
  while (!done) {
    const t0 = performance.now();
    const r = await fetch(url + "/health").catch(() => undefined);
    if (r) { await r.arrayBuffer(); out.push(performance.now() - t0); }
    await Bun.sleep(everyMs);
  }
  return out;
}

/** The server's own /metrics text (the key needs the metrics scope). */
export const scrape = (url: string, key: string) => fetch(url + "/metrics", { headers: { authorization: `Bearer ${key}` } }).then((r) => r.text());

/**
 * Server-side view of one route between two scrapes, from appliance_request_duration_seconds: requests, mean
 * (ms) and the upper bound of the bucket holding the 99th percentile (ms). It excludes the client's own delays.
 */
export function serverSide(before: string, after: string, route: string): { n: number; meanMs: number; p99BoundMs: number } {
  const read = (text: string) => {
    const buckets = new Map<string, number>();
    let sum = 0, count = 0;
    for (const line of text.split("\n")) {
      if (!line.includes(`route="${route}"`) || !line.startsWith("appliance_request_duration_seconds")) continue;
      const v = Number(line.slice(line.lastIndexOf(" ") + 1));
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le) buckets.set(le, v);
      else if (line.startsWith("appliance_request_duration_seconds_sum")) sum = v;
      else if (line.startsWith("appliance_request_duration_seconds_count")) count = v;
    }
    return { buckets, sum, count };
  };
  const a = read(before), b = read(after);
  const n = b.count - a.count;
  let p99 = Infinity;
  for (const [le, v] of [...b.buckets].sort((x, y) => Number(x[0]) - Number(y[0]))) {
    if (v - (a.buckets.get(le) ?? 0) >= 0.99 * n) { p99 = Number(le) * 1000; break; }
  }
  return { n, meanMs: n ? ((b.sum - a.sum) / n) * 1000 : NaN, p99BoundMs: p99 };
}

export const percentile = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
