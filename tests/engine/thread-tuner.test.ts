/**
 * Small decode steps get the thread count that measured fastest (thread-tuner.ts), never more than the governor
 * allows; prompts get every allowed thread. Step times are fed by hand; the real engine shows the hook sees steps.
 */
import { describe, expect, test } from "bun:test";
import { LlamaCompletion } from "node-llama-cpp";
import { Arrivals } from "../../src/engine/arrivals";
import { loadModel, openLlama, type Loaded } from "../../src/engine/llama-load";
import { LlamaEngine } from "../../src/engine/llama";
import { promptsOnAllThreads, tuneSteps } from "../../src/engine/thread-policy";
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
  test("decode steps settle on the faster count; the other is re-tried in short runs every exploreEvery steps", () => {
    const changes: TunerChange[] = [];
    const tuner = new StepTuner({ exploreEvery: 10, runLength: 3 }, (c) => changes.push(c));
    const used = drive(tuner, 100, 1, 2, (t) => (t === 1 ? 6 : 9)); // this machine, 28 M: 1 thread faster
    expect(used.slice(0, 6)).toEqual([2, 2, 2, 1, 1, 1]); // the full count first, then a run on the other
    // Then the faster count, but for a run of 3 every 10 steps (steps 10, 20, … 100; the last run cut at 100).
    expect(used.filter((t) => t === 2).length).toBe(3 + 9 * 3 + 1);
    expect(used.slice(-5)).toEqual([1, 1, 1, 1, 2]);
    expect(changes).toEqual([{ batch: 1, threads: 1, from: 2, medianMs: { 1: 6, 2: 9 } }]);
  });

  test("one slow step (a neighbour's burst) does not decide: medians are compared", () => {
    const tuner = new StepTuner({ exploreEvery: 1000, runLength: 4 });
    let n = 0;
    // 2 threads: 5 ms a step, but the 2nd step is hit by interference (45 ms); 1 thread: 7 ms. An average of
    // 2's steps (18 ms) would lose to 1; the median (5) wins.
    const used = drive(tuner, 20, 1, 2, (t) => (t === 2 ? (++n === 2 ? 45 : 5) : 7));
    expect(used.slice(0, 8)).toEqual([2, 2, 2, 2, 1, 1, 1, 1]);
    expect(used.slice(8)).toEqual(Array(12).fill(2));
  });

  test("one lucky step does not decide either", () => {
    const tuner = new StepTuner({ exploreEvery: 1000, runLength: 4 });
    let n = 0;
    // 2 threads mostly 9 ms with one 4 ms step (as on the 28 M model); 1 thread 6 ms: 1 must win and stay.
    const used = drive(tuner, 20, 1, 2, (t) => (t === 2 ? (++n === 3 ? 4 : 9) : 6));
    expect(used.slice(0, 8)).toEqual([2, 2, 2, 2, 1, 1, 1, 1]);
    expect(used.slice(8)).toEqual(Array(12).fill(1));
  });

  test("a slow spell on the count in use brings a try at once, not at the next scheduled one", () => {
    const tuner = new StepTuner({ exploreEvery: 1000, runLength: 4 });
    let step = 0;
    // 2 threads: 4 ms, then from step 20 on 12 ms (a slow spell); 1 thread: 6 ms throughout.
    const used = drive(tuner, 40, 1, 2, (t) => (t === 1 ? 6 : ++step >= 20 ? 12 : 4));
    expect(used.slice(8, 20).every((t) => t === 2)).toBe(true); // 2 won its comparison
    expect(used.slice(32)).toEqual(Array(8).fill(1)); // switched within a few steps of the spell
  });

  test("when the faster count changes (a neighbour left, a longer context) the tuner follows", () => {
    const tuner = new StepTuner({ exploreEvery: 10, runLength: 3 });
    expect(drive(tuner, 40, 1, 2, (t) => (t === 1 ? 6 : 9)).slice(-20).filter((t) => t === 1).length).toBeGreaterThanOrEqual(14);
    const after = drive(tuner, 80, 1, 2, (t) => (t === 1 ? 6 : 3));
    expect(after.slice(-20).filter((t) => t === 2).length).toBeGreaterThanOrEqual(14);
  });

  test("never above the allowed count; prompts (large batches) and one allowed thread are not tuned", () => {
    const tuner = new StepTuner({ exploreEvery: 3, smallBatch: 8, runLength: 2 });
    const used = drive(tuner, 30, 4, 4, (t) => 10 / t + t); // four counts to try (3 is fastest)
    expect(Math.max(...used)).toBeLessThanOrEqual(4);
    expect(used.slice(0, 4)).toEqual([4, 4, 3, 3]); // full count, then a try of 3, which wins (6.3 vs 6.5 ms)
    expect(drive(tuner, 20, 4, 2, () => 1).every((t) => t <= 2)).toBe(true); // the governor lowered the cap
    expect(drive(tuner, 5, 400, 4, () => 1)).toEqual([4, 4, 4, 4, 4]);
    expect(drive(tuner, 5, 1, 1, () => 1)).toEqual([1, 1, 1, 1, 1]);
  });
});

/** One completion on a sequence of `loaded`'s context, then the context and the model disposed. */
async function completeThenDispose(loaded: Loaded, prompt: string, maxTokens: number) {
  const seq = loaded.context.getSequence();
  try {
    await new LlamaCompletion({ contextSequence: seq }).generateCompletion(prompt, { maxTokens });
  } finally {
    seq.dispose();
    await loaded.context.dispose();
    await loaded.model.dispose();
  }
}

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
    await completeThenDispose(loaded, "the of and to in is you that", 9);
    expect(seen[0]![0]).toBeGreaterThan(2); // the prompt: one large batch
    expect(seen[0]![2]).toBe(2); // … on every allowed thread
    const steps = seen.slice(1);
    expect(steps.length).toBeGreaterThanOrEqual(7);
    expect(steps.every(([batch, allowed]) => batch === 1 && allowed === 2)).toBe(true);
    // Three timed steps on the full count (the prompt step before was on 2 too, so none is cold), then a try of 1.
    expect(steps.slice(0, 7).map(([, , t]) => t)).toEqual([2, 2, 2, 1, 1, 1, 1]);
  }, 120_000);

  test("a built OpenMP engine's prompts run on every usable CPU while the governor holds decode steps to fewer", async () => {
    const { log } = memoryLogger();
    const opts = { models: [], threads: 2, ctxSize: 512, parallel: 1, maxQueue: 4, gpu: false as const, log };
    const llama = await openLlama(opts);
    const loaded = await loadModel(llama, { id: "tiny", path: await tinyModel() }, opts, new Arrivals());
    llama.maxThreads = 1; // what the governor sets next to a busy neighbour (thread-governor.ts)
    expect(promptsOnAllThreads(loaded.context, 2)).toBe(true);
    // Each step's thread count as the engine has it when the step is decoded.
    const ctx = (loaded.context as unknown as { _ctx: { decodeBatch: () => Promise<unknown> } })._ctx;
    const decode = ctx.decodeBatch;
    const steps: number[] = [];
    Object.defineProperty(ctx, "decodeBatch", { value: () => { steps.push(loaded.context.currentThreads); return decode.call(ctx); }, writable: true, configurable: true });
    await completeThenDispose(loaded, "the of and to in is you that the of and to in is you that", 5);
    expect(steps.length).toBeGreaterThanOrEqual(5);
    expect(steps[0]).toBe(2); // the prompt (more than 8 tokens): both CPUs
    expect(steps.slice(1).every((t) => t === 1)).toBe(true); // decode steps: the governor's 1
  }, 120_000);

  test("a built engine's embeddings are prompts too: every usable CPU while the governor holds decode steps to fewer", async () => {
    const engine = await LlamaEngine.create({ models: [{ id: "tiny", path: await tinyModel() }], threads: 2, ctxSize: 512, parallel: 1, maxQueue: 4,
      gpu: false, log: memoryLogger().log, adaptiveThreads: true, openmp: true });
    try {
      const signal = new AbortController().signal;
      await engine.embed("tiny", ["made on first use"], signal);
      const internals = engine as unknown as { llama: { maxThreads: number }; loaded: Map<string, { embedding?: Promise<unknown> }> };
      const context = (await internals.loaded.get("tiny")!.embedding as { _llamaContext: { currentThreads: number; _ctx: { decodeBatch: () => Promise<unknown> } } })._llamaContext;
      const decode = context._ctx.decodeBatch;
      const steps: number[] = [];
      Object.defineProperty(context._ctx, "decodeBatch", { value: () => { steps.push(context.currentThreads); return decode.call(context._ctx); }, writable: true, configurable: true });
      internals.llama.maxThreads = 1; // the governor's count next to a busy neighbour
      await engine.embed("tiny", ["the of and to in is you that the of and to in is you that"], signal);
      expect(steps).toEqual([2]);
    } finally {
      await engine.dispose();
    }
  }, 120_000);
});
