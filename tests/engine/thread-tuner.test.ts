/**
 * Small decode steps get the thread count that measured fastest (thread-tuner.ts), never more than the governor
 * allows; prompts get every allowed thread. Step times are fed by hand; the real engine shows the hook sees steps.
 */
import { describe, expect, test } from "bun:test";
import { LlamaCompletion } from "node-llama-cpp";
import { Arrivals } from "../../src/engine/arrivals";
import { loadModel, openLlama } from "../../src/engine/llama-load";
import { tuneSteps } from "../../src/engine/thread-policy";
import { StepTuner, type TunerChange } from "../../src/engine/thread-tuner";
import { memoryLogger, tinyModel } from "../helpers";

/** Runs `steps` steps of `batch` tokens where a step on t threads takes cost(t) ms; returns the counts used. */
function drive(tuner: StepTuner, steps: number, batch: number, allowed: number, cost: (t: number) => number): number[] {
  const used: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = tuner.choose(batch, allowed);
    used.push(t);
    tuner.record(batch, t, cost(t));
  }
  return used;
}

describe("step tuner", () => {
  test("decode steps settle on the faster count; the other is re-tried once per exploreEvery steps", () => {
    const changes: TunerChange[] = [];
    const tuner = new StepTuner({ exploreEvery: 10 }, (c) => changes.push(c));
    const used = drive(tuner, 100, 1, 2, (t) => (t === 1 ? 6 : 9)); // this machine, 28 M: 1 thread faster
    expect(used.slice(0, 2)).toEqual([2, 1]); // each count measured once, the full count first
    expect(used.filter((t) => t === 2).length).toBe(1 + 10); // the first try plus one exploration per 10 steps
    expect(used.slice(-5).filter((t) => t === 1).length).toBeGreaterThanOrEqual(4);
    expect(changes[0]).toMatchObject({ batch: 1, threads: 1, msPerStep: { 1: 6, 2: 9 } });
  });

  test("when the faster count changes (a neighbour left, a longer context) the tuner follows", () => {
    const tuner = new StepTuner({ exploreEvery: 4, alpha: 0.5 });
    drive(tuner, 40, 1, 2, (t) => (t === 1 ? 6 : 9));
    const after = drive(tuner, 80, 1, 2, (t) => (t === 1 ? 6 : 3));
    expect(after.slice(-10).filter((t) => t === 2).length).toBeGreaterThanOrEqual(7);
  });

  test("never above the allowed count; prompts (large batches) and one allowed thread are not tuned", () => {
    const tuner = new StepTuner({ exploreEvery: 3, smallBatch: 8 });
    const used = drive(tuner, 30, 4, 4, (t) => 10 / t + t); // four counts to try (3 is fastest)
    expect(Math.max(...used)).toBeLessThanOrEqual(4);
    expect(used.slice(0, 4)).toEqual([4, 3, 2, 1]);
    expect(drive(tuner, 20, 4, 2, () => 1).every((t) => t <= 2)).toBe(true); // the governor lowered the cap
    expect(drive(tuner, 5, 400, 4, () => 1)).toEqual([4, 4, 4, 4, 4]);
    expect(drive(tuner, 5, 1, 1, () => 1)).toEqual([1, 1, 1, 1, 1]);
  });
});

describe("the hook on a real context", () => {
  test("every decode step goes through the tuner: prompt at the full count, decode steps timed", async () => {
    const { log } = memoryLogger();
    const opts = { models: [], threads: 2, ctxSize: 512, parallel: 1, maxQueue: 4, gpu: false as const, log };
    const llama = await openLlama(opts);
    const loaded = await loadModel(llama, { id: "tiny", path: await tinyModel() }, opts, new Arrivals());
    const seen: [number, number, number][] = [];
    const tuner = new StepTuner({ smallBatch: 2 });
    const choose = tuner.choose.bind(tuner), record = tuner.record.bind(tuner);
    tuner.choose = (batch, allowed) => { const t = choose(batch, allowed); seen.push([batch, allowed, t]); return t; };
    tuner.record = (batch, t, ms) => { expect(ms).toBeGreaterThan(0); record(batch, t, ms); };
    expect(tuneSteps(loaded.context, tuner)).toBe(true);
    const seq = loaded.context.getSequence();
    try {
      await new LlamaCompletion({ contextSequence: seq }).generateCompletion("the of and to in is you that", { maxTokens: 6 });
    } finally {
      seq.dispose();
      await loaded.context.dispose();
      await loaded.model.dispose();
    }
    expect(seen[0]![0]).toBeGreaterThan(2); // the prompt: one large batch
    expect(seen[0]![2]).toBe(2); // … on every allowed thread
    const steps = seen.slice(1);
    expect(steps.length).toBeGreaterThanOrEqual(5);
    expect(steps.every(([batch, allowed]) => batch === 1 && allowed === 2)).toBe(true);
    expect(steps.slice(0, 2).map(([, , t]) => t)).toEqual([2, 1]); // both counts measured
  }, 120_000);
});
