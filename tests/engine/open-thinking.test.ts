/**
 * A Qwen3-style template (the last assistant message written with its thought block; no thought in the generation
 * prompt): node-llama-cpp renders the generation prompt as an empty last assistant message, so every prompt ended in
 * an empty `<think>\n\n</think>\n\n`, the template's own `enable_thinking=false` output: thinking was always off.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { LlamaEngine } from "../../src/engine/llama";
import { silentLogger } from "../../src/log/logger";
import { tinyModel } from "../helpers";

const QWEN3_STYLE =
  "{%- for m in messages -%}{%- if m.role == 'assistant' -%}<|im_start|>assistant\n{% if loop.last %}<think>\n" +
  "{% if m.reasoning_content is defined and m.reasoning_content %}{{ m.reasoning_content }}{% endif %}\n</think>\n\n{% endif %}" +
  "{{ m.content }}<|im_end|>\n{%- else -%}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif -%}{%- endfor -%}" +
  "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif -%}";

let engine: LlamaEngine;
let text: (tokens: number[]) => string;
beforeAll(async () => {
  const path = await tinyModel({}, { template: QWEN3_STYLE, controlTokens: ["<think>", "</think>"] });
  engine = await LlamaEngine.create({ models: [{ id: "qwen", path }], threads: 2, ctxSize: 2048, parallel: 1, maxQueue: 4, gpu: false, log: silentLogger() });
  const model = (engine as unknown as { loaded: Map<string, { model: { detokenize: (t: number[], special: boolean) => string } }> }).loaded.get("qwen")!.model;
  text = (tokens) => model.detokenize(tokens, true).replace(/ (?=\n)|(?<=>) /g, ""); // the tiny tokenizer's space after control tokens
}, 60_000);
afterAll(async () => { await engine.dispose(); });

test("the generation prompt ends where the template's does: no empty thought block (thinking stays on)", async () => {
  const prompt = text(await engine.chatTokens("qwen", [{ role: "user", content: "Hello there" }]));
  expect(prompt.endsWith("<|im_start|>assistant\n")).toBe(true);
  expect(prompt).not.toContain("<think>");
});

test("an answer under a JSON format still comes after an empty thought, and is JSON", async () => {
  const g = await engine.chat({ model: "qwen", messages: [{ role: "user", content: "x" }], signal: new AbortController().signal,
    sampling: { maxTokens: 40, temperature: 0, format: { kind: "json_schema", schema: { type: "object", properties: { a: { type: "boolean" } }, required: ["a"], additionalProperties: false } } } });
  expect(g.reasoning).toBeUndefined();
  expect(Object.keys(JSON.parse(g.text))).toEqual(["a"]);
});
