/**
 * OpenAI's logit_bias as node-llama-cpp's TokenBias (src/engine/llama-options.ts tokenBias), built by filling its map
 * directly: the same map TokenBias.set gives for ordinary tokens, and end tokens included (set() skips those, which
 * made a ban of the end token silently do nothing). Behaviour on generated text: tests/server/parameters.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { getLlama, TokenBias, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { tokenBias } from "../../src/engine/llama-options";
import { tinyModel } from "../helpers";

let llama: Llama, model: LlamaModel;
beforeAll(async () => {
  llama = await getLlama({ gpu: false });
  model = await llama.loadModel({ modelPath: await tinyModel() });
}, 120_000);
afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
});

const mapOf = (b: TokenBias) => new Map((b as unknown as { _biases: Map<number, number> })._biases);

test("ordinary tokens: the map TokenBias.set makes (-100 bans, other values are logits)", () => {
  const ids = [5, 17, 40, 99, 120];
  const values = [-100, -5, 0.5, 7, 100];
  const viaSet = new TokenBias(model.tokenizer);
  ids.forEach((t, i) => viaSet.set(t as Token, values[i]! <= -100 ? "never" : { logit: values[i]! }));
  expect(ids.every((t) => !model.isEogToken(t as Token))).toBe(true);
  expect(mapOf(tokenBias(new Map(ids.map((t, i) => [t, values[i]!])), model))).toEqual(mapOf(viaSet));
});

test("the end token is in the map too: banned with -100, raised with +100", () => {
  const eos = model.tokens.eos!;
  expect(model.isEogToken(eos)).toBe(true);
  expect(mapOf(tokenBias(new Map([[eos, -100]]), model)).get(eos)).toBe(-Infinity);
  expect(mapOf(tokenBias(new Map([[eos, 100], [7, -3]]), model))).toEqual(new Map([[eos, 100], [7, -3]]));
});
