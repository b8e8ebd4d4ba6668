/**
 * The two bench-peer rows that need the appliance in-process:
 *  - prompt processing (tokens/s) of node-llama-cpp's shipped libraries, the same count llama-bench's pp512 reports;
 *  - event-loop lag of the request path while 4 greedy streams run (the "no stall > 5 ms" goal), with the
 *    JS thread's own CPU time per interval (what our code held it for, as opposed to waiting for a CPU).
 */
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../src/config/load";
import { LlamaEngine } from "../src/engine/llama";
import { KeyStore, keysFilePath } from "../src/guards/keys";
import { AuditLog } from "../src/log/audit";
import { silentLogger } from "../src/log/logger";
import { createServer } from "../src/server/create-server";
import { exactPromptIds, NO_END } from "./bench-peer-lib";

/** Prefill tokens/s in-process: a 512-token prompt (BOS + 511 ids, as llama-bench's pp512), max 1 token. */
export async function enginePrefill(model: string, threads: number, runs: number): Promise<number[]> {
  const engine = await LlamaEngine.create({ models: [{ id: "bench", path: model }], threads, ctxSize: 2048, parallel: 1, maxQueue: 4, gpu: false, log: silentLogger() });
  try {
    const out: number[] = [];
    for (let i = 0; i <= runs; i++) {
      const prompt = exactPromptIds((text) => engine.tokenize("bench", text), 511);
      const t0 = performance.now();
      const g = await engine.complete({ model: "bench", prompt, sampling: { maxTokens: 1, temperature: 0 }, signal: new AbortController().signal });
      if (i > 0) out.push(g.promptTokens / ((performance.now() - t0) / 1000)); // run 0 warms up
    }
    return out;
  } finally {
    await engine.dispose();
  }
}

/**
 * Event-loop lag (ms) observed by a 1 ms timer while 4 concurrent greedy streams run through the whole request path
 * (auth, guards, scanner, audit). The client shares the loop, so its share of the lag is counted too (an upper bound).
 */
export async function streamLag(model: string, stateDir: string, threads: number, maxTokens: number) {
  const config = parseConfig({ stateDir, model: [model], threads, parallel: 4, ctxSize: 2048, rateLimit: { rpm: 0, tpm: 0, maxConcurrent: 0 } });
  const engine = await LlamaEngine.create({ models: [{ id: "bench", path: model }], threads, ctxSize: 2048, parallel: 4, maxQueue: 16, gpu: false, log: silentLogger() });
  const store = new KeyStore(keysFilePath(stateDir));
  const { key } = store.create({ name: "lag", scopes: ["completions"] });
  const log = silentLogger();
  const { app } = await createServer(config, { engine, keys: store, audit: new AuditLog(path.join(stateDir, "audit.jsonl")), log });
  app.listen({ hostname: "127.0.0.1", port: 0 });
  const base = `http://127.0.0.1:${app.server!.port}`;
  const stream = async () => {
    const r = await fetch(`${base}/v1/completions`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "bench", prompt: "Once upon a time", max_tokens: maxTokens, temperature: 0, logit_bias: NO_END, stream: true }) });
    await r.text();
  };
  try {
    await stream(); // warm-up
    const lags: number[] = [], ran: number[] = [];
    let last = performance.now(), cpu = threadCpuMs();
    const timer = setInterval(() => {
      const now = performance.now(), c = threadCpuMs();
      lags.push(now - last - 1); ran.push(c - cpu);
      last = now; cpu = c;
    }, 1);
    await Promise.all([stream(), stream(), stream(), stream()]);
    clearInterval(timer);
    // A late tick on a busy machine is often the scheduler's (the JS thread runnable, not running): the JS thread's
    // own CPU time within each interval tells what our code (or GC) held it for.
    const worst = ran.length ? Math.max(...ran) : 0;
    lags.sort((a, b) => a - b);
    return { max: lags.at(-1) ?? 0, p99: lags[Math.floor(lags.length * 0.99)] ?? 0, over5: lags.filter((l) => l > 5).length, samples: lags.length,
      maxOnCpu: worst, onCpuOver5: ran.filter((r) => r > 5).length };
  } finally {
    await app.stop(true);
    await engine.dispose();
  }
}

/** CPU time (ms) the main (JS) thread has run, from /proc/self/schedstat (Linux); 0 elsewhere. */
function threadCpuMs(): number {
  try { return Number(fs.readFileSync("/proc/self/schedstat", "utf8").split(" ")[0]) / 1e6; } catch { return 0; }
}
