/**
 * The generation prompt's end (src/engine/generation-prompt.ts). A Qwen3-style template (the last assistant message
 * written with its thought block; no thought in the generation prompt): node-llama-cpp renders the generation prompt as an empty last assistant message, so every prompt ended in
 * an empty `<think>\n\n</think>\n\n`, the template's own `enable_thinking=false` output: thinking was always off.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { LlamaEngine } from "../../src/engine/llama";
import { makeEngine, tinyModel } from "../helpers";

const QWEN3_STYLE =
  "{%- for m in messages -%}{%- if m.role == 'assistant' -%}<|im_start|>assistant\n{% if loop.last %}<think>\n" +
  "{% if m.reasoning_content is defined and m.reasoning_content %}{{ m.reasoning_content }}{% endif %}\n</think>\n\n{% endif %}" +
  "{{ m.content }}<|im_end|>\n{%- else -%}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif -%}{%- endfor -%}" +
  "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif -%}";

let engine: LlamaEngine;
let text: (tokens: number[]) => string;
beforeAll(async () => {
  const path = await tinyModel({}, { template: QWEN3_STYLE, controlTokens: ["<think>", "</think>"] });
  engine = await makeEngine({ id: "qwen", path, parallel: 1, maxQueue: 4 });
  const model = (engine as unknown as { loaded: Map<string, { model: { detokenize: (t: number[], special: boolean) => string } }> }).loaded.get("qwen")!.model;
  text = (tokens) => model.detokenize(tokens, true).replace(/ (?=\n)|(?<=>) /g, ""); // the tiny tokenizer's space after control tokens
}, 60_000);
afterAll(async () => { await engine.dispose(); });

test("the generation prompt ends where the template's does: no empty thought block (thinking stays on)", async () => {
  const prompt = text(await engine.chatTokens("qwen", [{ role: "user", content: "Hello there" }]));
  expect(prompt.endsWith("<|im_start|>assistant\n")).toBe(true);
  expect(prompt).not.toContain("<think>");
});

test("an answer under a JSON format, or asked not to think, comes after one empty thought block (the template's own), and is JSON", async () => {
  const messages = [{ role: "user" as const, content: "x" }];
  const g = await engine.chat({ model: "qwen", messages, signal: new AbortController().signal,
    sampling: { maxTokens: 40, temperature: 0, format: { kind: "json_schema", schema: { type: "object", properties: { a: { type: "boolean" } }, required: ["a"], additionalProperties: false } } } });
  expect(g.reasoning).toBeUndefined();
  expect(Object.keys(JSON.parse(g.text))).toEqual(["a"]);
  // exactly one block more than the thinking prompt: node-llama-cpp's closed thought came on top of the template's (two)
  const model = (engine as unknown as { loaded: Map<string, { model: { tokenize: (t: string, special: boolean) => number[] } }> }).loaded.get("qwen")!.model;
  const block = model.tokenize("<think>\n\n</think>\n\n", true).length;
  const thinking = (await engine.chatTokens("qwen", messages)).length;
  const oneBlock = (n: number) => n > thinking && n <= thinking + block; // (tokenized in place, a newline may merge)
  expect(oneBlock(g.promptTokens)).toBe(true);
  const none = await engine.chat({ model: "qwen", messages, signal: new AbortController().signal, thinking: false, sampling: { maxTokens: 4, temperature: 0 } });
  expect(oneBlock(none.promptTokens)).toBe(true);
  expect(none.reasoning).toBeUndefined();
});

/** A Hermes-style tool template (Qwen 2.5's kind), written for this test: node-llama-cpp reads its call syntax. */
const HERMES_STYLE =
  "{%- if tools %}<|im_start|>system\n# Tools\n<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools>\nAnswer a call as <tool_call>\n" +
  "{\"name\": <name>, \"arguments\": <args>}\n</tool_call><|im_end|>\n{%- endif %}" +
  "{%- for m in messages %}{%- if m.role == 'assistant' %}<|im_start|>assistant\n{% if m.content %}{{ m.content }}{% endif %}" +
  "{%- if m.tool_calls %}{%- for c in m.tool_calls %}{% if not loop.first or m.content %}\n{% endif %}<tool_call>\n{\"name\": \"{{ c.function.name }}\", " +
  "\"arguments\": {% if c.function.arguments is string %}{{ c.function.arguments }}{% else %}{{ c.function.arguments | tojson }}{% endif %}}\n</tool_call>" +
  "{%- endfor %}{%- endif %}<|im_end|>\n{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n" +
  "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif %}{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}";

test("after a tool result the prompt ends at the template's generation prompt, not with node-llama-cpp's blank lines after it", async () => {
  const path = await tinyModel({}, { template: HERMES_STYLE, controlTokens: ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"] });
  const hermes = await makeEngine({ id: "hermes", path, parallel: 1, maxQueue: 4 });
  try {
    const model = (hermes as unknown as { loaded: Map<string, { model: { detokenize: (t: number[], special: boolean) => string } }> }).loaded.get("hermes")!.model;
    const tokens = await hermes.chatTokens("hermes", [{ role: "user", content: "Weather?" },
      { role: "assistant", content: "", toolCalls: [{ id: "c1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }] },
      { role: "tool", content: "sunny", toolCallId: "c1" }],
    [{ name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } }]);
    const prompt = model.detokenize(tokens, true).replace(/ (?=\n)|(?<=>) /g, "");
    expect(prompt).toContain("<tool_response>\nsunny\n</tool_response>");
    expect(prompt.endsWith("</tool_response><|im_end|><|im_start|>assistant\n")).toBe(true);
  } finally {
    await hermes.dispose();
  }
});
