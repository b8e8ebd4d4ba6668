/**
 * Sampler settings made and applied once per generation (src/engine/sampler-memo.ts): node-llama-cpp rebuilt them
 * from the same inputs for every sampled token, on the JS thread between decode steps. The samples must stay the
 * same: each case generates on a sequence of a context without the hooks, then on a sequence the hooked context
 * hands out, with the same seed and settings, and compares the texts. How often node-llama-cpp's own
 * `_resolveSamplerConfig` ran is counted under the memo (before: once per token).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { getLlama, LlamaChat, LlamaCompletion, LlamaGrammar, TokenBias, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel } from "node-llama-cpp";
import { memoSamplerConfig, memoSampling, reusableInputs, skipRepeatedApply } from "../../src/engine/sampler-memo";
import { tinyModel } from "../helpers";

let llama: Llama, model: LlamaModel, plain: LlamaContext, hooked: LlamaContext;
const TOKENS = 24;

beforeAll(async () => {
  llama = await getLlama({ gpu: false });
  model = await llama.loadModel({ modelPath: await tinyModel() });
  plain = await model.createContext({ contextSize: 512, sequences: 1, threads: 1 });
  hooked = await model.createContext({ contextSize: 512, sequences: 2, threads: 1 });
  expect(skipRepeatedApply(hooked)).toBe(true); // memoSamplerConfig per sequence in generate(), after the counter
}, 120_000);
afterAll(async () => {
  await plain?.dispose();
  await hooked?.dispose();
  await model?.dispose();
  await llama?.dispose();
});

/** Counts the calls reaching node-llama-cpp's own settings builder: a counter put in front of it before any memo. */
function countResolves(sequence: LlamaContextSequence): { n: number } {
  const count = { n: 0 };
  const seq = sequence as unknown as { _resolveSamplerConfig: (inputs: unknown) => unknown };
  const original = seq._resolveSamplerConfig;
  Object.defineProperty(seq, "_resolveSamplerConfig", {
    configurable: true, writable: true, value: function (this: unknown, inputs: unknown) { count.n++; return original.call(this, inputs); },
  });
  return count;
}

type Options = Parameters<LlamaCompletion["generateCompletion"]>[1];
async function generate(context: LlamaContext, options: (m: LlamaModel) => Options): Promise<{ text: string; resolves: number }> {
  const sequence = context.getSequence();
  const count = countResolves(sequence);
  if (context === hooked) expect(memoSamplerConfig(sequence)).toBe(true);
  const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
  try {
    const text = await completion.generateCompletion("the quick brown fox", { maxTokens: TOKENS, ...options(model) });
    return { text, resolves: count.n };
  } finally {
    completion.dispose({ disposeSequence: false });
    await sequence.dispose();
  }
}

const noEnd = (m: LlamaModel) => new TokenBias(m.tokenizer).set(2 as never, "never").set(260 as never, "never");

describe("sampler settings once per generation", () => {
  test("seeded sampling with top-p and a token bias: same text, settings built once instead of per token", async () => {
    const options = (m: LlamaModel): Options => ({ temperature: 0.9, topP: 0.9, topK: 0, seed: 1234, tokenBias: noEnd(m), repeatPenalty: false });
    const before = await generate(plain, options);
    const after = await generate(hooked, options);
    expect(after.text).toBe(before.text);
    expect(before.text.length).toBeGreaterThan(0);
    expect(after.resolves).toBeLessThanOrEqual(1);
  });

  test("greedy: same text", async () => {
    const options = (m: LlamaModel): Options => ({ temperature: 0, seed: 7, tokenBias: noEnd(m), repeatPenalty: false });
    expect((await generate(hooked, options)).text).toBe((await generate(plain, options)).text);
  });

  test("repeat penalties (token list changes every token): not reused, same text", async () => {
    const options = (m: LlamaModel): Options => ({ temperature: 0.8, seed: 99, tokenBias: noEnd(m), repeatPenalty: { presencePenalty: 0.5, frequencyPenalty: 0.5 } });
    const before = await generate(plain, options);
    const after = await generate(hooked, options);
    expect(after.text).toBe(before.text);
    expect(after.resolves).toBeGreaterThanOrEqual(TOKENS - 1);
  });

  test("a grammar: same text, settings built once", async () => {
    const grammar = await LlamaGrammar.getFor(llama, "json");
    const options = (): Options => ({ temperature: 0.7, seed: 5, grammar, tokenBias: noEnd(model), repeatPenalty: false });
    const before = await generate(plain, options);
    const after = await generate(hooked, options);
    expect(after.text).toBe(before.text);
    expect(before.text.length).toBeGreaterThan(0);
    expect(after.resolves).toBeLessThanOrEqual(1);
  });

  test("chat (LlamaChat hands over its grammar state as a getter): same text, settings built once", async () => {
    const chat = async (context: LlamaContext) => {
      const sequence = context.getSequence();
      const count = countResolves(sequence);
      if (context === hooked) expect(memoSamplerConfig(sequence)).toBe(true);
      const session = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
      try {
        const r = await session.generateResponse([{ type: "user", text: "hello there" }],
          { maxTokens: TOKENS, temperature: 0.9, seed: 42, tokenBias: noEnd(model), repeatPenalty: false });
        return { text: r.response, resolves: count.n };
      } finally {
        session.dispose({ disposeSequence: false });
        await sequence.dispose();
      }
    };
    const before = await chat(plain);
    const after = await chat(hooked);
    expect(after.text).toBe(before.text);
    expect(before.text.length).toBeGreaterThan(0);
    expect(before.resolves).toBeGreaterThan(1);
    expect(after.resolves).toBeLessThanOrEqual(1);
  });

  test("memoSampling: every sequence the context hands out reuses its settings", async () => {
    const context = await model.createContext({ contextSize: 256, sequences: 1, threads: 1 });
    try {
      expect(memoSampling(context)).toBe(true);
      const sequence = context.getSequence();
      expect(Object.hasOwn(sequence, "_resolveSamplerConfig")).toBe(true);
      const config = { temperature: 0.5, seed: 3 };
      const resolve = (sequence as unknown as { _resolveSamplerConfig: (i: object) => object })._resolveSamplerConfig.bind(sequence);
      const first = resolve({ ...config });
      expect(resolve({ ...config })).toBe(first);
      expect(resolve({ ...config, temperature: 0.6 })).not.toBe(first);
      await sequence.dispose();
    } finally {
      await context.dispose();
    }
  });

  test("inputs that can change without changing identity are never reused", () => {
    expect(reusableInputs({ temperature: 0.5, seed: 1 })).toBe(true);
    expect(reusableInputs({ temperature: 0.5 })).toBe(false); // no seed: node-llama-cpp seeds from the current second
    expect(reusableInputs({ seed: 1, repeatPenalty: { punishTokens: () => [] } })).toBe(false);
    expect(reusableInputs({ seed: 1, dryRepeatPenalty: { strength: 1 } })).toBe(false);
    expect(reusableInputs({ seed: 1, somethingNew: 1 })).toBe(false); // an input this code does not know
  });
});
