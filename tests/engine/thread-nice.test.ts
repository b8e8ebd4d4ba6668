/**
 * Inference threads below the event loop's priority (src/engine/thread-nice.ts): after the engine loads and runs a
 * generation on the tiny model, every thread of Bun's work pool (where node-llama-cpp decodes and samples) has a nice
 * value INFERENCE_NICE_STEPS above the event loop's thread, which keeps its own; the JavaScript engine's helper
 * threads (garbage collection, JIT), which the event loop waits for, keep theirs too.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import type { LlamaEngine } from "../../src/engine/llama";
import { INFERENCE_NICE_STEPS, lowerInferenceThreads } from "../../src/engine/thread-nice";
import { makeEngine } from "../helpers";

let engine: LlamaEngine;
beforeAll(async () => { engine = await makeEngine(); }, 120_000);
afterAll(async () => { await engine?.dispose(); });

/** Every thread of this process: its name and nice value. */
function threads(): { tid: number; name: string; nice: number }[] {
  return fs.readdirSync("/proc/self/task").flatMap((t) => {
    try {
      return [{ tid: Number(t), name: fs.readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim(), nice: os.getPriority(Number(t)) }];
    } catch {
      return []; // ended meanwhile
    }
  });
}

test.skipIf(process.platform !== "linux")("the work pool's threads run below the event loop after a generation; the event loop and the JS engine's helpers keep their priority", async () => {
  const own = os.getPriority(process.pid);
  const before = new Map(threads().map((t) => [t.tid, t.nice]));
  const g = await engine.complete({ model: "tiny", prompt: "hello world", signal: new AbortController().signal,
    sampling: { maxTokens: 8, temperature: 0, logitBias: new Map([[2, -100], [260, -100]]) } });
  expect(g.completionTokens).toBe(8);
  const now = threads();
  const pool = now.filter((t) => t.name.startsWith("Bun Pool"));
  expect(pool.length).toBeGreaterThan(0); // node-llama-cpp's async work ran there
  for (const t of pool) expect({ ...t, nice: t.nice }).toEqual({ ...t, nice: Math.min(19, own + INFERENCE_NICE_STEPS) });
  expect(os.getPriority(process.pid)).toBe(own);
  for (const t of now.filter((t) => /^(HeapHelper|JITWorker)/.test(t.name) && before.has(t.tid))) expect(t.nice).toBe(before.get(t.tid)!);
  // Nothing new since: the next call only reads the thread list.
  expect(lowerInferenceThreads()).toBe(0);
}, 60_000);
