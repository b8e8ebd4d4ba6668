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
async function promptOf(post: (path: string, b: object) => Promise<Response>, chat: object[] = messages): Promise<string> {
  const t = await post("/tokenize", { model: "tiny", messages: chat, tools });
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

const call = (id: string, city: string) => ({ id, type: "function", function: { name: "get_weather", arguments: JSON.stringify({ city }) } });

test("call ids that repeat: each result under its own call, in order; a tojson template node-llama-cpp renders twice escapes once", async () => {
  const s = await startBinary([], [], {}, await rawToolModel());
  try {
    const post = (path: string, b: object) => fetch(`${s.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" }, body: JSON.stringify(b) });
    const across = await promptOf(post, [{ role: "user", content: "Paris?" }, { role: "assistant", content: null, tool_calls: [call("call_1", "Paris")] },
      { role: "tool", tool_call_id: "call_1", content: "PARIS_RESULT" }, { role: "assistant", content: "ok" }, { role: "user", content: "Rome?" },
      { role: "assistant", content: null, tool_calls: [call("call_1", "Rome")] }, { role: "tool", tool_call_id: "call_1", content: "ROME_RESULT" }]);
    expect(across.match(/PARIS_RESULT/g)?.length).toBe(1);
    expect(across.match(/ROME_RESULT/g)?.length).toBe(1);
    const within = await promptOf(post, [{ role: "user", content: "Both?" }, { role: "assistant", content: null, tool_calls: [call("call_1", "Paris"), call("call_1", "Rome")] },
      { role: "tool", tool_call_id: "call_1", content: "AAA_RESULT" }, { role: "tool", tool_call_id: "call_1", content: "BBB_RESULT" }]);
    expect(within.match(/AAA_RESULT/g)?.length).toBe(1);
    expect(within.indexOf("AAA_RESULT")).toBeLessThan(within.indexOf("BBB_RESULT"));
  } finally {
    expect(await s.stop()).toBe(0);
  }
  // One call per turn, as Llama 3.1's template says: two make node-llama-cpp's first render throw, and it renders again.
  const raising = hermesToolTemplate("{{ m.content | tojson }}").replace("{%- for c in m.tool_calls or [] %}",
    "{%- if (m.tool_calls or []) | length > 1 %}{{ raise_exception('one call per turn') }}{%- endif %}{%- for c in m.tool_calls or [] %}");
  const j = await startBinary([], [], {}, await tinyModel({}, { template: raising, controlTokens: RAW_TOOL_TOKENS }));
  try {
    const post = (path: string, b: object) => fetch(`${j.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${j.key}`, "content-type": "application/json" }, body: JSON.stringify(b) });
    const p = await promptOf(post, [{ role: "user", content: "Both?" }, { role: "assistant", content: null, tool_calls: [call("call_1", "Paris"), call("call_2", "Rome")] },
      { role: "tool", tool_call_id: "call_1", content: text }, { role: "tool", tool_call_id: "call_2", content: "R2" }]);
    expect(p).toContain(`<tool_response>\n${JSON.stringify(text).slice(0, -1)}`); // escaped once (the word-start space before the closing quote aside)
  } finally {
    expect(await j.stop()).toBe(0);
  }
}, 120_000);
