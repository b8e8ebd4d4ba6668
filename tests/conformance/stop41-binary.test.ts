/**
 * This stop's model-family fixes the way a user meets them: the compiled binary, set up by its own CLI, serving a
 * tiny model that carries another family's template and control tokens.
 */
import { expect, test } from "bun:test";
import { thinkingModel, tinyModel } from "../helpers";
import { startBinary } from "./binary-server";

const LLAMA3_TEMPLATE = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + " +
  "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}" +
  "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

const chat = async (baseURL: string, key: string, body: object) => {
  const r = await fetch(`${baseURL}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], ...body }) });
  return { status: r.status, text: await r.text() };
};

test("a Llama 3.1+ model (a single-token <|eom_id|>, as every such GGUF has) is served: serve exited at start before", async () => {
  const file = await tinyModel({}, { template: LLAMA3_TEMPLATE, controlTokens: ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"] });
  const s = await startBinary([], [], {}, file);
  try {
    const r = await chat(s.baseURL, s.key, { max_tokens: 4 });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).choices[0].message.role).toBe("assistant");
  } finally {
    expect(await s.stop()).toBe(0);
  }
}, 120_000);

test("a reasoning model's thought is reasoning_content, streamed and not, and never the answer", async () => {
  const s = await startBinary([], [], {}, await thinkingModel());
  try {
    const full = JSON.parse((await chat(s.baseURL, s.key, { max_tokens: 12, seed: 3, temperature: 1 })).text);
    expect(full.choices[0].finish_reason).toBe("length");
    expect(full.choices[0].message.content).toBe("");
    expect(full.choices[0].message.reasoning_content.length).toBeGreaterThan(0);
    const sse = (await chat(s.baseURL, s.key, { max_tokens: 12, seed: 3, temperature: 1, stream: true })).text;
    const deltas = sse.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)).choices[0]?.delta ?? {});
    expect(deltas.map((d) => d.reasoning_content ?? "").join("")).toBe(full.choices[0].message.reasoning_content);
    expect(deltas.map((d) => d.content ?? "").join("")).toBe("");
    // the start says which wrapper renders the chats and that it has thoughts
    expect(s.log()).toMatch(/"msg":"model loaded"/);
    expect(JSON.parse(s.log().split("\n").find((l) => l.includes('"model loaded"'))!)).toMatchObject({ wrapper: "JinjaTemplate", reasoning: true });
  } finally {
    expect(await s.stop()).toBe(0);
  }
}, 120_000);
