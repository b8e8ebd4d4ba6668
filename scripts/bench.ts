#!/usr/bin/env bun
/**
 * bun scripts/bench.ts [--tokens N] [--runs N] [--threads N] [--layers N --embd N --ff N --heads N]
 *
 * Side by side, in one run, on a generated ~85 M parameter model (so compute dominates):
 *   - tokens/s of the raw engine in-process vs through the HTTP server (same model, threads, max tokens)
 *   - time to first token through HTTP (first SSE content chunk) and in-process
 *   - aggregate tokens/s of two concurrent streams (parallel 2: batched decoding)
 *   - requests/s for GET /v1/models
 *   - a thread sweep (1 … cores) to back the --threads default (more threads than cores is far slower)
 */
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load";
import { LlamaEngine } from "../src/engine/llama";
import { makeTinyModel } from "../src/engine/tiny-model";
import { KeyStore, keysFilePath } from "../src/guards/keys";
import { silentLogger } from "../src/log/logger";
import { createServer } from "../src/server/create-server";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  tokens: { type: "string", default: "64" }, runs: { type: "string", default: "3" }, threads: { type: "string" },
  layers: { type: "string", default: "12" }, embd: { type: "string", default: "768" }, ff: { type: "string", default: "2048" },
  heads: { type: "string", default: "12" }, "no-sweep": { type: "boolean" },
} });
const maxTokens = Number(values.tokens), runs = Number(values.runs);
const threads = Number(values.threads ?? os.availableParallelism());
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-"));
const modelPath = path.join(dir, "bench.gguf");
const { params } = await makeTinyModel(modelPath, { layers: Number(values.layers), embd: Number(values.embd), ff: Number(values.ff), heads: Number(values.heads), ctx: 2048 });
console.log(`model: ${(params / 1e6).toFixed(1)} M params (F32), ${os.availableParallelism()} cores, bun ${Bun.version}, max_tokens ${maxTokens}, ${runs} runs`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const prompt = "Once upon a time there was a small server that";
const sampling = { maxTokens, temperature: 0 };

async function engineRun(t: number) {
  const engine = await LlamaEngine.create({ models: [{ id: "bench", path: modelPath }], threads: t, ctxSize: 2048, parallel: 1, maxQueue: 4, gpu: false, log: silentLogger() });
  const tps: number[] = [], ttft: number[] = [];
  await engine.complete({ model: "bench", prompt, sampling: { maxTokens: 4 }, signal: new AbortController().signal }); // warm-up
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    let first = 0;
    const g = await engine.complete({ model: "bench", prompt, sampling, signal: new AbortController().signal, onText: () => { first ||= performance.now(); } });
    const dt = (performance.now() - t0) / 1000;
    tps.push(g.completionTokens / dt);
    ttft.push(first - t0);
  }
  return { engine, tps: median(tps), ttft: median(ttft) };
}

if (!values["no-sweep"]) {
  console.log("\nthread sweep (raw engine):");
  for (const t of [...new Set([1, 2, os.availableParallelism()])].filter((t) => t <= os.availableParallelism())) {
    const r = await engineRun(t);
    console.log(`  threads=${t}: ${r.tps.toFixed(1)} tokens/s`);
    await r.engine.dispose();
  }
}

const raw = await engineRun(threads);
const stateDir = path.join(dir, "state");
const config = parseConfig({ stateDir, model: [modelPath],
  // Rate limits on (set far above what the run can reach, so they are checked on every request but never refuse).
  rateLimit: { rpm: 100_000_000, tpm: 1_000_000_000 }, audit: true });
const store = new KeyStore(keysFilePath(stateDir));
const { key } = store.create({ name: "bench", scopes: ["completions", "models"] });
const log = silentLogger();
const { AuditLog } = await import("../src/log/audit");
const { app } = await createServer(config, { engine: raw.engine, keys: store, audit: new AuditLog(path.join(stateDir, "audit.jsonl")), log });
app.listen({ hostname: "127.0.0.1", port: 0 });
const base = `http://127.0.0.1:${app.server!.port}`;
const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };

const httpTps: number[] = [], httpTtft: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/completions`, { method: "POST", headers, body: JSON.stringify({ model: "bench", prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }) });
  const reader = res.body!.getReader();
  let buf = "", first = 0, usage = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += new TextDecoder().decode(value);
    if (!first && /"text":"[^"]/.test(buf)) first = performance.now();
  }
  const m = /"completion_tokens":(\d+)/.exec(buf);
  usage = Number(m?.[1] ?? 0);
  httpTps.push(usage / ((performance.now() - t0) / 1000));
  httpTtft.push(first - t0);
}

// Two clients at once on a two-sequence engine: llama.cpp batches them into the same decode steps.
const duo = await LlamaEngine.create({ models: [{ id: "bench", path: modelPath }], threads, ctxSize: 2048, parallel: 2, maxQueue: 4, gpu: false, log: silentLogger() });
const { app: duoApp } = await createServer(config, { engine: duo, keys: store, log });
duoApp.listen({ hostname: "127.0.0.1", port: 0 });
const streamTokens = async (baseUrl: string) => {
  const r = await fetch(`${baseUrl}/v1/completions`, { method: "POST", headers, body: JSON.stringify({ model: "bench", prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }) });
  return Number(/"completion_tokens":(\d+)/.exec(await r.text())?.[1] ?? 0);
};
await streamTokens(`http://127.0.0.1:${duoApp.server!.port}`); // warm-up
let t1 = performance.now();
const both = await Promise.all([0, 1].map(() => streamTokens(`http://127.0.0.1:${duoApp.server!.port}`)));
const duoTps = (both[0]! + both[1]!) / ((performance.now() - t1) / 1000);
await duoApp.stop(true);
await duo.dispose();

let n = 0;
const until = performance.now() + 3000;
await Promise.all(Array.from({ length: 8 }, async () => {
  while (performance.now() < until) { await (await fetch(`${base}/v1/models`, { headers })).arrayBuffer(); n++; }
}));

const rows = [
  ["tokens/s (median)", raw.tps.toFixed(1), median(httpTps).toFixed(1)],
  ["time to first token ms", raw.ttft.toFixed(0), median(httpTtft).toFixed(0)],
];
console.log(`\n${"".padEnd(26)}${"engine".padStart(10)}${"HTTP".padStart(10)}`);
for (const r of rows) console.log(`${r[0]!.padEnd(26)}${r[1]!.padStart(10)}${r[2]!.padStart(10)}`);
console.log(`server/engine tokens/s ratio: ${(median(httpTps) / raw.tps).toFixed(3)} (goal >= 0.97)`);
console.log(`2 concurrent streams (parallel 2): ${duoTps.toFixed(1)} tokens/s aggregate vs ${median(httpTps).toFixed(1)} for one`);
console.log(`GET /v1/models: ${(n / 3).toFixed(0)} requests/s (8 concurrent clients, auth + rate limit + audit on)`);
console.log(`load average (1 min) at the end: ${os.loadavg()[0]!.toFixed(2)}`);
console.log("note: HTTP time to first token includes the response scanner's hold-back window (see README).");
await app.stop(true);
await raw.engine.dispose();
fs.rmSync(dir, { recursive: true, force: true });
