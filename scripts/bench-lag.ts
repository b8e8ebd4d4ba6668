#!/usr/bin/env bun
/**
 * bun scripts/bench-lag.ts [--size 28|155] [--rounds 4] [--tokens 48] [--threads 2] [--top 5]
 *
 * Where the event loop stalls while 4 greedy streams run (bench-peer's lag row, in-process, the same set-up: auth,
 * guards, scanner, audit on; the client shares the loop). A 1 ms interval records each tick's lateness, the JS
 * thread's own CPU time within it and its time waiting in the run queue (/proc/self/schedstat: what our code or GC
 * held the thread for, as opposed to waiting for a CPU held by other threads, e.g. inference); engine calls, their
 * stages (admitted, slot, first-token) and text callbacks, the context's decode steps and samplings (node-llama-cpp's
 * native calls, through a proxy), and the client's first and last chunks are marked. Per round: ticks, the largest
 * lateness, ticks later than 5 ms (with their summed lateness, JS CPU and run-queue wait), and the `--top` ticks with
 * the most JS CPU, each with the marks that fell inside it. Runs the code of the tree it is in (for a before/after,
 * run it in a worktree of the older commit too).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load";
import { LlamaEngine } from "../src/engine/llama";
import { makeTinyModel } from "../src/engine/tiny-model";
import { KeyStore, keysFilePath } from "../src/guards/keys";
import { AuditLog } from "../src/log/audit";
import { silentLogger } from "../src/log/logger";
import { createServer } from "../src/server/create-server";
import { load1, NO_END, SHAPES } from "./bench-peer-lib";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  size: { type: "string", default: "155" }, rounds: { type: "string", default: "4" }, tokens: { type: "string", default: "48" },
  threads: { type: "string", default: "2" }, top: { type: "string", default: "5" },
} });
const shape = SHAPES[values.size];
if (!shape) { console.error(`--size: ${values.size} is not one of ${Object.keys(SHAPES).join(", ")}`); process.exit(2); }
const threads = Number(values.threads), maxTokens = Number(values.tokens);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-lag-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));

const model = path.join(dir, "bench.gguf");
await makeTinyModel(model, { ...shape, ctx: 2048 });
const config = parseConfig({ stateDir: dir, model: [model], threads, parallel: 4, ctxSize: 2048, rateLimit: { rpm: 0, tpm: 0, maxConcurrent: 0 } });
const engine = await LlamaEngine.create({ models: [{ id: "bench", path: model }], threads, ctxSize: 2048, parallel: 4, maxQueue: 16, gpu: false, log: silentLogger() });
const store = new KeyStore(keysFilePath(dir));
const { key } = store.create({ name: "lag", scopes: ["completions"] });
const { app } = await createServer(config, { engine, keys: store, audit: new AuditLog(path.join(dir, "audit.jsonl")), log: silentLogger() });
app.listen({ hostname: "127.0.0.1", port: 0 });
const base = `http://127.0.0.1:${app.server!.port}`;

const marks: [number, string][] = [];
const mark = (what: string) => marks.push([performance.now(), what]);
// Marks only: the engine's own complete() runs, with its stages passed on.
const complete = engine.complete.bind(engine);
engine.complete = (call) => {
  mark("engine call");
  return complete({ ...call, onStage: (s) => { mark(s); call.onStage?.(s); }, onText: call.onText && ((t) => { mark("text"); call.onText!(t); }) });
};
// The context's native calls, marked through a proxy (calls pass through unchanged): decode steps and samplings.
{
  const context = (engine as unknown as { loaded: Map<string, { context: { _ctx: Record<string, unknown> } }> }).loaded.get("bench")!.context;
  const native = context._ctx;
  const wrap = (name: string, f: (...a: unknown[]) => unknown) => (...a: unknown[]) => {
    mark(name);
    const r = f.apply(native, a);
    return r instanceof Promise ? r.finally(() => mark(`${name} done`)) : r;
  };
  const wrapped = { decodeBatch: wrap("decode", native.decodeBatch as never), sampleToken: wrap("sample", native.sampleToken as never) };
  context._ctx = new Proxy(native, { get: (t, k) => (wrapped as Record<string | symbol, unknown>)[k] ??
    (typeof t[k as string] === "function" ? (t[k as string] as (...a: unknown[]) => unknown).bind(t) : t[k as string]) });
}
/** The JS thread's CPU time and its time waiting in the run queue for a CPU, in ms (/proc/self/schedstat: the main thread's). */
const sched = () => {
  const [run, wait] = fs.readFileSync("/proc/self/schedstat", "utf8").split(" ");
  return { cpu: Number(run) / 1e6, wait: Number(wait) / 1e6 };
};

async function stream(i: number) {
  const r = await fetch(`${base}/v1/completions`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "bench", prompt: "Once upon a time", max_tokens: maxTokens, temperature: 0, logit_bias: NO_END, stream: true }) });
  let first = true;
  for await (const _ of r.body!) if (first) { first = false; mark(`client ${i} first chunk`); }
  mark(`client ${i} end`);
}

console.log(`model ${values.size} M, threads ${threads}, 4 streams of ${maxTokens} tokens, ${values.rounds} rounds, bun ${Bun.version}`);
await stream(0); // warm-up
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    marks.length = 0;
    const ticks: { at: number; late: number; cpu: number; wait: number }[] = [];
    const l0 = load1();
    let last = performance.now(), s0 = sched();
    const timer = setInterval(() => {
      const now = performance.now(), s = sched();
      ticks.push({ at: now, late: now - last - 1, cpu: s.cpu - s0.cpu, wait: s.wait - s0.wait });
      last = now; s0 = s;
    }, 1);
    const t0 = performance.now();
    await Promise.all([0, 1, 2, 3].map(stream));
    clearInterval(timer);
    const top = [...ticks].sort((a, b) => b.cpu - a.cpu).slice(0, Number(values.top));
    const late = ticks.filter((t) => t.late > 5);
    console.log(`round ${round}: ${ticks.length} ticks, latest ${Math.max(...ticks.map((t) => t.late)).toFixed(1)} ms, ` +
      `${late.length} later than 5 ms; JS CPU within a tick: max ${top[0]!.cpu.toFixed(1)} ms, ` +
      `${ticks.filter((t) => t.cpu > 5).length} over 5 ms; the late ones: ${late.reduce((a, t) => a + t.late, 0).toFixed(0)} ms late, ` +
      `${late.reduce((a, t) => a + t.cpu, 0).toFixed(0)} ms JS CPU, ${late.reduce((a, t) => a + t.wait, 0).toFixed(0)} ms run-queue wait; load ${l0.toFixed(2)}→${load1().toFixed(2)}`);
    for (const k of top) {
      const inside = marks.filter(([t]) => t <= k.at && t > k.at - k.late - 1).map(([, what]) => what);
      const count = (w: string) => inside.filter((x) => x === w).length;
      const rest = inside.filter((w) => !["text", "decode", "decode done", "sample", "sample done"].includes(w));
      console.log(`  +${(k.at - t0).toFixed(1)} ms: JS CPU ${k.cpu.toFixed(1)} ms, run-queue wait ${k.wait.toFixed(1)} ms, late ${k.late.toFixed(1)} ms | ${count("text")} text callbacks, ` +
        `${count("decode")} decode steps started / ${count("decode done")} ended, ${count("sample")} samplings started / ${count("sample done")} ended` +
        `${rest.length ? ", " + rest.join(", ") : ""}`);
    }
  }
} finally {
  await app.stop(true);
  await engine.dispose();
}
