/**
 * This stop's fixes the way a user meets them: the compiled binary, set up by its own CLI, serving a tiny model that
 * carries another family's kind of template.
 */
import { expect, test } from "bun:test";
import { LLAMA31_TEMPLATE, LLAMA31_TOKENS, RAW_TOOL_TOKENS, hermesToolTemplate, rawToolModel, tinyModel } from "../helpers";
import { startBinary } from "./binary-server";

const text = "line one \"quoted\"\nline two";
const messages = [{ role: "user", content: "Weather?" },
  { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } }] },
  { role: "tool", tool_call_id: "call_1", content: text }];
const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];

/** The prompt the served model is given for `messages` (through /tokenize and /detokenize, as a client can read it). */
async function promptOf(post: (path: string, b: object) => Promise<Response>): Promise<string> {
  const t = await post("/tokenize", { model: "tiny", messages, tools });
  expect(t.status).toBe(200);
  const { tokens } = await t.json() as { tokens: number[] };
  return (await (await post("/detokenize", { model: "tiny", tokens })).json() as { content: string }).content.replace(/ (?=\n)|(?<=>) /g, "");
}

test("a tool's text result reaches the model as the template writes it, not JSON-quoted (Qwen 3 / DeepSeek-R1 kind)", async () => {
  const s = await startBinary([], [], {}, await rawToolModel());
  try {
    const post = (path: string, b: object) => fetch(`${s.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" }, body: JSON.stringify(b) });
    expect(await promptOf(post)).toContain(`<tool_response>\n${text}\n</tool_response>`); // was "line one \"quoted\"\nline two" with escapes
    // the chat itself answers over that history
    const r = await post("/v1/chat/completions", { model: "tiny", messages, tools, max_tokens: 3 });
    expect(r.status).toBe(200);
  } finally {
    expect(await s.stop()).toBe(0);
  }
}, 120_000);

test("on node-llama-cpp's built-in Llama 3.1 format too, the text as the (test) template writes it: asked in a worker", async () => {
  const s = await startBinary([], [], {}, await tinyModel({}, { template: LLAMA31_TEMPLATE, controlTokens: LLAMA31_TOKENS }));
  try {
    const post = (path: string, b: object) => fetch(`${s.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" }, body: JSON.stringify(b) });
    expect(await promptOf(post)).toContain(`ipython<|end_header_id|>\n\n${text}<|eot_id|>`);
  } finally {
    expect(await s.stop()).toBe(0);
  }
}, 120_000);

test("a Jinja template whose call syntax node-llama-cpp reads, trimming the tool's text: the text as it is (was JSON-dumped)", async () => {
  const s = await startBinary([], [], {}, await tinyModel({}, { template: hermesToolTemplate("{{ m.content | trim }}"), controlTokens: RAW_TOOL_TOKENS }));
  try {
    const post = (path: string, b: object) => fetch(`${s.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" }, body: JSON.stringify(b) });
    expect(await promptOf(post)).toContain(`<tool_response>\n${text}\n</tool_response>`);
    expect((await post("/v1/chat/completions", { model: "tiny", messages, tools, max_tokens: 3 })).status).toBe(200);
  } finally {
    expect(await s.stop()).toBe(0);
  }
}, 120_000);
