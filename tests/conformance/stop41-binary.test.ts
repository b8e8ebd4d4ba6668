/**
 * This stop's model-family fixes the way a user meets them: the compiled binary, set up by its own CLI, serving a
 * tiny model that carries another family's template and control tokens.
 */
import { expect, test } from "bun:test";
import { LLAMA31_TEMPLATE, LLAMA31_TOKENS, thinkingModel, tinyModel } from "../helpers";
import { startBinary } from "./binary-server";

const chat = async (baseURL: string, key: string, body: object) => {
  const r = await fetch(`${baseURL}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], ...body }) });
  return { status: r.status, text: await r.text() };
};

test("a Llama 3.1+ model (a single-token <|eom_id|>, as every such GGUF has) is served, without tool instructions in chats without tools", async () => {
  const file = await tinyModel({}, { template: LLAMA31_TEMPLATE, controlTokens: LLAMA31_TOKENS });
  const s = await startBinary([], [], {}, file); // serve exited at start before
  try {
    const r = await chat(s.baseURL, s.key, { max_tokens: 4 });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).choices[0].message.role).toBe("assistant");
    expect(JSON.parse(s.log().split("\n").find((l) => l.includes('"model loaded"'))!).wrapper).toBe("Llama 3.1");
    // node-llama-cpp's Llama 3.1 format wrote "# Tool Instructions" into every chat's system preamble
    const prompt = async (body: object) => {
      const post = (path: string, b: object) => fetch(`${s.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" }, body: JSON.stringify(b) });
      const { tokens } = await (await post("/tokenize", { model: "tiny", messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "hi" }], ...body })).json() as { tokens: number[] };
      return (await (await post("/detokenize", { model: "tiny", tokens })).json() as { content: string }).content;
    };
    const plain = await prompt({});
    expect(plain).toContain("Cutting Knowledge Date");
    expect(plain).not.toContain("Tool Instructions");
    const withTools = await prompt({ tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }] });
    expect(withTools).toContain("Tool Instructions");
    expect(withTools).toMatch(/Today Date: \d\d [A-Z][a-z]{2} \d{4}\n/); // the same date spelling with tools as without
    // without a system message the preamble ends with the template's blank line; the day is two digits (strftime %d)
    const alone = await prompt({ messages: [{ role: "user", content: "hi" }] });
    expect(alone).toMatch(/Today Date: \d\d [A-Z][a-z]{2} \d{4}\n\n<\|eot_id\|>/);
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
