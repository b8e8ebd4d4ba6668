#!/usr/bin/env bun
/**
 * bun scripts/bench-steps.ts [--size 28] [--streams 4] [--tokens 48] [--threads N] [--runs 3] [--http [--scan on|off|no-host]]
 *
 * Where a batched decode step's time goes, in-process (engine only, no HTTP): N greedy completions start together
 * (a burst) and every llama_decode of the context is recorded (tokens in the batch, native decode time) with the
 * JS time between one decode's end and the next one's start (sampling, node-llama-cpp's per-token work, ours).
 * Prints per run: steps, the burst's first steps' sizes and how many sequences each held (were the prompts evaluated together?), decode ms per step,
 * gap ms per step, aggregate tok/s, and each stream's first-token time. What issue 11 items 1-2 were measured with.
 * --http sends the burst through the whole request path as streamed completions and adds, per stream, when the
 * engine first handed text on (after its first token: node-llama-cpp holds tokens that end inside a UTF-8 character),
 * when the response scanner first let text out and how many characters it held at the first token (--scan: the scanner as
 * shipped, off, or without the internal-host rule): where a burst's spread of first texts comes from.
 * --phases (with --http) adds where the JS time between two decode steps goes: each step's cycle from one decode's end
 * to the next decode's start is cut at marks (sampleToken called / resolved, the engine's onText, the response scanner's
 * push, the stream's request for its next evaluation, node-llama-cpp's dispatch of the queued batch, its initBatch) and the mean µs per step of each stretch between consecutive marks
 * is printed (issue 11: per-token cost on the request path; `bun scripts/bench-steps.ts --http --phases --streams 1`).
 * --floor (engine runs, not --http) adds, after each run, the same burst driven straight on the addon (scripts/addon-floor.ts)
 * on a second context of the same model: per step initBatch, addToBatch,
 * decodeBatch and sampleToken (greedy, the same bias), each token detokenized, no stop checks. Both rows print the JS
 * thread's CPU per generated token (/proc): what the native calls alone cost it, and what the engine's run costs it
 * (node-llama-cpp's sequence and batching machinery, and ours) — the part of issue 11's two-stream gap a generation
 * loop of our own straight on the addon could remove.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { makeTinyModel } from "../src/engine/tiny-model";
import { usableCpus } from "../src/engine/cpu-budget";
import { LlamaEngine } from "../src/engine/llama";
import { silentLogger } from "../src/log/logger";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { NO_END, median, wordsPrompt, SHAPES } from "./bench-peer-lib";
import { addonFloor } from "./addon-floor";
import { parseConfig } from "../src/config/load";
import { KeyStore, keysFilePath } from "../src/guards/keys";
import { AuditLog } from "../src/log/audit";
import { createServer } from "../src/server/create-server";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  size: { type: "string", default: "28" }, streams: { type: "string", default: "4" }, tokens: { type: "string", default: "48" },
  threads: { type: "string" }, runs: { type: "string", default: "3" }, http: { type: "boolean", default: false },
  scan: { type: "string", default: "on" }, phases: { type: "boolean", default: false }, floor: { type: "boolean", default: false },
} });
if (values.floor && values.http) { console.error("--floor measures engine runs: leave out --http"); process.exit(2); }
const n = Number(values.streams), maxTokens = Number(values.tokens), threads = Number(values.threads ?? usableCpus().cpus);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-steps-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
const model = path.join(dir, "m.gguf");
await makeTinyModel(model, { ...SHAPES[values.size]!, ctx: 2048 });
const engine = await LlamaEngine.create({ models: [{ id: "bench", path: model }], threads, ctxSize: 2048, parallel: n, maxQueue: 16, gpu: false, log: silentLogger() });

type Native = { initBatch: (n: number) => void; decodeBatch: () => Promise<void> };
// The addon's methods are read-only: the context's handle on it is replaced by a proxy that records both calls.
const loadedModel = (engine as unknown as { loaded: Map<string, { context: { _ctx: Native }; model: import("node-llama-cpp").LlamaModel }> }).loaded.get("bench")!;
const context = loadedModel.context;
// --floor: a second context of the same model; its native handle is its own, so its steps are not among those recorded below.
const floor = values.floor ? await addonFloor(loadedModel.model, { streams: n, threads, prompt: wordsPrompt(10), maxTokens, bias: NO_END }) : undefined;
const native = context._ctx;
const steps: { size: number; seqs: number; start: number; end: number }[] = [];
/**
 * --phases: marks of the current cycle (from a decode's end); at the next decode's start each stretch between consecutive
 * marks is added up under "from>to" (a mark seen twice in a cycle, e.g. one per stream, makes several stretches).
 */
const cycle: [string, number][] = [];
const stretches = new Map<string, { ms: number; n: number }>();
let cycles = 0;
const mark = (name: string) => {
  if (!values.phases) return;
  const now = performance.now();
  if (name === "decode start") {
    if (cycle[0]?.[0] === "decode end") {
      cycle.push([name, now]);
      for (let i = 1; i < cycle.length; i++) {
        const k = `${cycle[i - 1]![0]} > ${cycle[i]![0]}`, s = stretches.get(k) ?? { ms: 0, n: 0 };
        s.ms += cycle[i]![1] - cycle[i - 1]![1]; s.n++; stretches.set(k, s);
      }
      cycles++;
    }
    cycle.length = 0;
    return;
  }
  if (name === "decode end") cycle.length = 0;
  cycle.push([name, now]);
};
const samples: number[] = [];
let size = 0, seqs = 0;
const bound = new Map<string | symbol, unknown>();
context._ctx = new Proxy(native, {
  get(target, p) {
    if (p === "initBatch") return (k: number) => { mark("initBatch"); size = k; seqs = 0; target.initBatch(k); };
    if (p === "addToBatch") return (...a: unknown[]) => { seqs++; return (target as unknown as { addToBatch: (...x: unknown[]) => unknown }).addToBatch(...a); };
    if (p === "decodeBatch") {
      return async () => {
        mark("decode start");
        const s = { size, seqs, start: performance.now(), end: 0 };
        steps.push(s);
        try { await target.decodeBatch(); } finally { s.end = performance.now(); mark("decode end"); }
      };
    }
    if (p === "sampleToken") {
      return (...args: unknown[]) => {
        mark("sampleToken called");
        const t = performance.now();
        const r = (target as unknown as { sampleToken: (...a: unknown[]) => Promise<unknown> }).sampleToken(...args);
        samples.push(performance.now() - t); // the part that runs on the JS thread (the rest, if any, off it)
        return values.phases ? r.then((v) => { mark("sampleToken resolved"); return v; }) : r;
      };
    }
    const v = (target as unknown as Record<string | symbol, unknown>)[p];
    if (typeof v !== "function") return v;
    // Bound once per method: a fresh bound function at every access was measured as part of the gap.
    let b = bound.get(p);
    if (!b) bound.set(p, b = (v as (...a: unknown[]) => unknown).bind(target));
    return b;
  },
});

// A sequence asking for its next evaluation (batch-sync.ts's wrapper: before any wait for the context lock).
const internal = context as unknown as { _decodeTokens: (...a: unknown[]) => Promise<unknown> };
const decodeTokens = internal._decodeTokens;
internal._decodeTokens = function (this: unknown, ...a: unknown[]) { mark("next evaluation asked"); return decodeTokens.apply(this, a); };
// node-llama-cpp starting the queued batch's dispatch (batch-order.ts's wrapper: before the context lock and the batch set-up).
const pending = context as unknown as { dispatchPendingBatch: () => void };
const dispatchPending = pending.dispatchPendingBatch;
pending.dispatchPendingBatch = function (this: unknown) { mark("dispatch"); return dispatchPending.call(this); };
/** A figure, or "-" where there is none (--tokens 1: one step, so no gap between steps). */
const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
// --http: the same burst through the whole request path (auth, guards, scanner, audit) as streamed completions.
const stateDir = path.join(dir, "state");
const served = values.http ? await (async () => {
  const scan = { on: {}, off: { responseScan: { action: "off" } }, "no-host": { responseScan: { internalHosts: [] } } }[values.scan];
  if (!scan) throw new Error(`--scan: ${values.scan} is not one of on, off, no-host`);
  const config = parseConfig({ stateDir, model: [model], threads, parallel: n, ctxSize: 2048, rateLimit: { rpm: 0, tpm: 0, maxConcurrent: 0 }, ...scan });
  const store = new KeyStore(keysFilePath(stateDir));
  const { key } = store.create({ name: "steps", scopes: ["completions"] });
  const { app } = await createServer(config, { engine, keys: store, audit: new AuditLog(path.join(stateDir, "audit.jsonl")), log: silentLogger() });
  app.listen({ hostname: "127.0.0.1", port: 0 });
  // Each stream's response filter, watched: when it first let text out, and what it held after the first token.
  const deps = app.deps as { responseFilter: (state: never) => { push: (t: string) => string; pending: number } };
  const filter = deps.responseFilter;
  deps.responseFilter = (state) => {
    const f = filter(state), push = f.push.bind(f), w = { out: 0, heldAtFirst: -1 };
    watched.push(w);
    f.push = (t) => {
      mark("scanner push");
      const r = push(t);
      mark("scanner pushed");
      if (w.heldAtFirst < 0) w.heldAtFirst = f.pending;
      if (r && !w.out) w.out = performance.now();
      return r;
    };
    return f;
  };
  return { app, key, base: `http://127.0.0.1:${app.server!.port}` };
})() : undefined;
const watched: { out: number; heldAtFirst: number }[] = [];
const entered: number[] = [];
const complete = engine.complete.bind(engine);
const firstTokens: number[] = [];
/** When the engine first handed text on (node-llama-cpp holds a token that ends inside a UTF-8 character). */
const firstTexts: number[] = [];
engine.complete = (call) => {
  entered.push(performance.now());
  const onText = call.onText;
  let texted = false;
  return complete({ ...call, onStage: (st) => { if (st === "first-token") firstTokens.push(performance.now()); call.onStage?.(st); },
    onText: onText && ((t) => {
      if (!texted && t) { texted = true; firstTexts.push(performance.now()); }
      mark("engine onText"); onText(t); mark("onText returned");
    }) });
};

/** One generation; resolves with its completion tokens. onFirst: its first token (engine) or first text byte (HTTP). */
async function one(onFirst: () => void): Promise<number> {
  if (!served) {
    const g = await engine.complete({
      model: "bench", prompt: wordsPrompt(10), signal: new AbortController().signal,
      sampling: { maxTokens, temperature: 0, logitBias: new Map(Object.entries(NO_END).map(([k, v]) => [Number(k), v])) },
      onStage: (s) => { if (s === "first-token") onFirst(); },
    });
    return g.completionTokens;
  }
  const r = await fetch(`${served.base}/v1/completions`, { method: "POST", headers: { authorization: `Bearer ${served.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "bench", prompt: wordsPrompt(10), max_tokens: maxTokens, temperature: 0, logit_bias: NO_END, stream: true, stream_options: { include_usage: true } }) });
  // The client shares the server's JS thread: it looks at each chunk once (the whole body searched again at every
  // chunk, as before, was O(n²) and showed up in the gap between steps), and keeps only the tail (the usage line is in the last event).
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let last = "", seen = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const chunk = dec.decode(value, { stream: true });
    if (!seen && (last.slice(-8) + chunk).includes('"text":"')) { seen = true; onFirst(); }
    last = (last + chunk).slice(-1024);
  }
  return Number(/"completion_tokens":(\d+)/.exec(last)?.[1] ?? 0);
}

/**
 * The JS thread's CPU time so far, ms: clock_gettime(CLOCK_THREAD_CPUTIME_ID) on Linux (/proc's 10 ms ticks read a
 * run of two 96-token streams in steps of ~50 µs per token); elsewhere NaN (printed as "-").
 */
const threadClock = process.platform === "linux"
  ? dlopen("libc.so.6", { clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } }).symbols.clock_gettime : undefined;
const timespec = new BigInt64Array(2);
const jsCpuMs = () => (threadClock && threadClock(3 /* CLOCK_THREAD_CPUTIME_ID */, ptr(timespec)) === 0 ? Number(timespec[0]) * 1e3 + Number(timespec[1]) / 1e6 : NaN);

const run = async () => {
  const cpu0 = jsCpuMs();
  steps.length = 0; entered.length = 0; firstTokens.length = 0; firstTexts.length = 0; samples.length = 0; watched.length = 0;
  stretches.clear(); cycles = 0;
  const t0 = performance.now();
  const firsts: number[] = [];
  const counts = await Promise.all(Array.from({ length: n }, (_, i) => one(() => { firsts[i] ??= performance.now() - t0; })));
  const ms = performance.now() - t0;
  const tokens = counts.reduce((a, b) => a + b, 0);
  const gaps = steps.slice(1).map((s, i) => s.start - steps[i]!.end);
  const dec = steps.map((s) => s.end - s.start);
  console.log(`steps ${steps.length} (first sizes ${steps.slice(0, 6).map((s) => s.size).join(",")}, sequences in them ${steps.slice(0, 6).map((s) => s.seqs).join(",")}; first starts ms ${steps.slice(0, 4).map((s) => f(s.start - t0)).join(",")}; ` +
    `engine entered ms ${entered.map((e) => f(e - t0)).join(",")}), decode ms/step median ${f(median(dec), 2)} ` +
    `sum ${f(dec.reduce((a, b) => a + b, 0))}, gap ms/step median ${f(median(gaps), 2)} max ${f(Math.max(...gaps), 2)} sum ${f(gaps.reduce((a, b) => a + b, 0))}; ` +
    `sampleToken on the JS thread ms median ${f(median(samples), 2)} max ${f(Math.max(...samples), 2)} sum ${f(samples.reduce((a, b) => a + b, 0))}; ${f(tokens / (ms / 1000))} tok/s; first tokens ms ${firstTokens.map((x) => f(x - t0)).join(", ")}; ` +
    (served ? `engine's first text ms ${firstTexts.map((x) => f(x - t0)).join(", ")}; ` : "") + `first ${served ? "text" : "token"} ms ${firsts.map((x) => f(x)).join(", ")}` +
    (served ? `; scanner (${values.scan}) first let text out at ms ${watched.map((w) => (w.out ? f(w.out - t0) : "never")).join(", ")}, ` +
      `held chars after the first token ${watched.map((w) => w.heldAtFirst).join(", ")}; spread of first texts ${f(Math.max(...firsts) / Math.min(...firsts), 2)}` : "") +
    `; JS thread CPU µs/token ${f(((jsCpuMs() - cpu0) / tokens) * 1000, 0)} (load ${f(os.loadavg()[0]!, 2)})`);
  if (values.phases && cycles) {
    const parts = [...stretches].filter(([, s]) => s.n >= cycles / 10).sort((a, b) => b[1].ms - a[1].ms);
    console.log(`  between steps (${cycles} cycles, mean µs per step; ×k: times per step): ` +
      parts.map(([k, s]) => `${k} ${f((s.ms / cycles) * 1000, 0)}${s.n > cycles * 1.1 ? ` ×${f(s.n / cycles, 1)}` : ""}`).join("; ") +
      `; total ${f(([...stretches.values()].reduce((a, s) => a + s.ms, 0) / cycles) * 1000, 0)}`);
  }
};
try {
  await run(); // warm-up
  await floor?.burst();
  for (let i = 0; i < Number(values.runs); i++) {
    await run();
    if (!floor) continue;
    const cpu0 = jsCpuMs(), r = await floor.burst();
    console.log(`  addon floor: steps ${r.steps}, gap ms/step median ${f(median(r.gaps), 2)} max ${f(Math.max(...r.gaps), 2)}, ${f(r.tokens / (r.ms / 1000))} tok/s, ` +
      `JS thread CPU µs/token ${f(((jsCpuMs() - cpu0) / r.tokens) * 1000, 0)} (load ${f(os.loadavg()[0]!, 2)})`);
  }
} finally {
  await floor?.dispose();
  await served?.app.stop(true);
  await engine.dispose();
}
