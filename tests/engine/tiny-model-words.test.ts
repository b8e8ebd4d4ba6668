/**
 * wordStartTokenIds: the bias bench-peer uses for its word-separated rows (what the response scanner's hold costs
 * on text with spaces). Checked on the real engine and tokenizer: each id reads as a space and then non-space text,
 * and a greedy completion biased towards them writes words separated by spaces, where the unbiased one does not.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { LlamaEngine } from "../../src/engine/llama";
import { wordStartTokenIds } from "../../src/engine/tiny-model";
import { makeEngine } from "../helpers";

let engine: LlamaEngine;
beforeAll(async () => { engine = await makeEngine({ parallel: 1 }); }, 120_000);
afterAll(() => engine.dispose());

const complete = async (logitBias?: Map<number, number>) => {
  const g = await engine.complete({ model: "tiny", prompt: "the of and to in", signal: new AbortController().signal,
    sampling: { maxTokens: 32, temperature: 0, logitBias: new Map([[2, -100], [260, -100], ...logitBias ?? []]) } });
  expect(g.completionTokens).toBe(32);
  return g.text;
};

test("each word-start id reads as a space and then text that has no space", () => {
  const ids = wordStartTokenIds();
  const x = engine.tokenize("tiny", "x")[0]!;
  expect(ids.length).toBeGreaterThan(140); // "▁" + 36 characters, then the 111 words
  for (const id of ids) expect(engine.detokenize("tiny", [id], "tokens", [x])).toMatch(/^ \S+$/);
}, 120_000);

test("biased towards them, the random model writes space-separated words; unbiased, it writes runs with no space", async () => {
  const words = await complete(new Map(wordStartTokenIds().map((id) => [id, 50])));
  expect(words).toMatch(/^( \S+){32}$/);
  const own = await complete();
  expect(own.split(" ").length).toBeLessThan(16);
}, 120_000);
