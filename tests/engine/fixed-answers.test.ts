/**
 * End-token and checkpoint answers asked natively once instead of at every token (src/engine/fixed-answers.ts).
 * The generated text must not change: each case generates on a context without the hooks, then on a hooked one,
 * same greedy settings, and compares. How often node-llama-cpp's own answers were reached is counted: before the
 * change, every generated token asked both again.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { getLlama, GgufInsights, LlamaCompletion, TokenBias, type Llama, type LlamaContext, type LlamaModel, type Token } from "node-llama-cpp";
import { rememberFixedAnswers } from "../../src/engine/fixed-answers";
import { tinyModel } from "../helpers";

let llama: Llama, model: LlamaModel, plain: LlamaContext, hooked: LlamaContext;
const TOKENS = 24;
/** node-llama-cpp's own end-token answer, counted; put in front before the hook so the hook's misses reach it. */
const eogAsked = { n: 0 };
/** Native architecture questions behind needsCheckpoints (GgufInsights.isHybrid), counted. */
const hybridAsked = { n: 0 };
let restoreHybrid: () => void;
let ownEog: (t: Token) => boolean;

beforeAll(async () => {
  llama = await getLlama({ gpu: false });
  const modelPath = await tinyModel();
  model = await llama.loadModel({ modelPath });
  plain = await model.createContext({ contextSize: 512, sequences: 1, threads: 1 });
  hooked = await model.createContext({ contextSize: 512, sequences: 1, threads: 1 });
  ownEog = model.isEogToken;
  Object.defineProperty(model, "isEogToken", { configurable: true, writable: true, value: (t: Token) => { eogAsked.n++; return ownEog(t); } });
  const proto = GgufInsights.prototype, desc = Object.getOwnPropertyDescriptor(proto, "isHybrid")!;
  Object.defineProperty(proto, "isHybrid", { ...desc, get(this: GgufInsights) { hybridAsked.n++; return desc.get!.call(this); } });
  restoreHybrid = () => Object.defineProperty(proto, "isHybrid", desc);
}, 120_000);
afterAll(async () => {
  restoreHybrid?.();
  await plain?.dispose();
  await hooked?.dispose();
  await model?.dispose();
  await llama?.dispose();
});

let installed = false;
/** The hooks, once (the end-token one is the model's, shared by both contexts: install after the plain run). */
const install = () => { if (!installed) { installed = true; expect(rememberFixedAnswers(model, hooked)).toBe(true); } };
const vocabulary = () => (model.fileInfo.metadata.tokenizer.ggml.tokens as unknown[]).length;

async function generate(context: LlamaContext): Promise<{ text: string; eog: number; hybrid: number }> {
  const sequence = context.getSequence();
  const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
  eogAsked.n = 0; hybridAsked.n = 0;
  try {
    const noEnd = new TokenBias(model.tokenizer).set(2 as Token, "never").set(260 as Token, "never");
    const text = await completion.generateCompletion("the quick brown fox", { maxTokens: TOKENS, temperature: 0, seed: 3, tokenBias: noEnd });
    return { text, eog: eogAsked.n, hybrid: hybridAsked.n };
  } finally {
    completion.dispose({ disposeSequence: false });
    await sequence.dispose();
  }
}

describe("fixed answers remembered", () => {
  test("same text; node-llama-cpp's end-token and architecture answers no longer asked at every token", async () => {
    const before = await generate(plain);
    install();
    const first = await generate(hooked);
    const second = await generate(hooked);
    expect(first.text).toBe(before.text);
    expect(second.text).toBe(before.text);
    expect(before.text.length).toBeGreaterThan(0);
    // Without the hooks both were asked at least once per generated token.
    expect(before.eog).toBeGreaterThanOrEqual(TOKENS);
    expect(before.hybrid).toBeGreaterThanOrEqual(TOKENS);
    // With them: the end-token question once per distinct token (the second run asks nothing new), the
    // architecture once per sequence.
    expect(first.eog).toBeLessThan(before.eog);
    expect(second.eog).toBe(0);
    expect(first.hybrid).toBeLessThanOrEqual(1);
    expect(second.hybrid).toBeLessThanOrEqual(1);
  });

  test("every token of the vocabulary gets the same end-token answer as before", () => {
    install();
    const answers = Array.from({ length: vocabulary() }, (_, t) => ownEog(t as Token));
    expect(Array.from({ length: vocabulary() }, (_, t) => model.isEogToken(t as Token))).toEqual(answers);
    eogAsked.n = 0;
    expect(Array.from({ length: vocabulary() }, (_, t) => model.isEogToken(t as Token))).toEqual(answers);
    expect(eogAsked.n).toBe(0); // all remembered
    expect(answers.some(Boolean)).toBe(true); // the model has an end token, answered true
    expect(model.isEogToken(null as unknown as Token)).toBe(false);
  });
});
