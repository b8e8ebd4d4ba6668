/**
 * Fidelity run (openai SDK 6.49 against the server): fields of the SDK's own request types that were refused
 * (prompt_cache_retention's "in_memory", Responses history fields newer models and SDKs write, tool defaults), and
 * tool_choice naming a hosted tool, which read zod's "Invalid input".
 */
import { describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { sdkApp } from "./sdk-app";

const srv = sdkApp();

const post = async (path: string, body: unknown) => {
  const r = await fetch(`${srv.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as any };
};

describe("fields of the SDK's own types since 6.x", () => {
  const hi = [{ role: "user" as const, content: "hi" }];
  test("prompt_cache_retention in the SDK's spelling (in_memory) and the earlier one, on every generating route", async () => {
    const client = new OpenAI({ baseURL: srv.baseURL + "/v1", apiKey: srv.ctx.key, maxRetries: 0 });
    for (const retention of ["in_memory", "in-memory", "24h"] as const) {
      const chat = await client.chat.completions.create({ model: "tiny", messages: hi, max_tokens: 1, prompt_cache_retention: retention as "in_memory" });
      expect(chat.object).toBe("chat.completion");
      const resp = await client.responses.create({ model: "tiny", input: "hi", max_output_tokens: 1, prompt_cache_retention: retention as "in_memory" });
      expect(resp.object).toBe("response");
      expect((await post("/v1/completions", { model: "tiny", prompt: "hi", max_tokens: 1, prompt_cache_retention: retention })).status).toBe(200);
    }
  });
  test("Responses history as newer models and SDKs write it: phase, caller, namespace, null ids and statuses, cache breakpoints; tool defaults", async () => {
    const input = [
      { role: "user", content: [{ type: "input_text", text: "hi", prompt_cache_breakpoint: { mode: "explicit" } }], phase: null },
      { type: "message", role: "assistant", phase: "final_answer", content: [{ type: "output_text", text: "calling" }] },
      { type: "function_call", call_id: "c1", name: "f", arguments: "{}", caller: { type: "direct" }, namespace: "ns", status: null },
      { type: "function_call_output", call_id: "c1", output: "42", id: null, status: null, caller: null },
    ];
    const tools = [{ type: "function", name: "f", parameters: { type: "object" }, defer_loading: false, output_schema: null, allowed_callers: ["direct"] }];
    const r = await post("/v1/responses", { model: "tiny", input, tools, max_output_tokens: 1 });
    expect([r.status, r.body.object]).toEqual([200, "response"]);
    const chat = await post("/v1/chat/completions", { model: "tiny", max_tokens: 1,
      messages: [{ role: "user", content: [{ type: "text", text: "hi", prompt_cache_breakpoint: { mode: "explicit" } }] }] });
    expect([chat.status, chat.body.object]).toEqual([200, "chat.completion"]);
    // What needs hosted tools stays a 400 naming the field.
    for (const [field, value, param] of [["defer_loading", true, "tools[0].defer_loading"], ["allowed_callers", ["programmatic"], "tools[0].allowed_callers[0]"],
      ["allowed_callers", [], "tools[0].allowed_callers"]] as const) { // [] is no caller at all, not the default (second fix-attack run)
      const bad = await post("/v1/responses", { model: "tiny", input: "hi", tools: [{ ...tools[0], [field]: value }] });
      expect([bad.status, bad.body.error.param]).toEqual([400, param]);
    }
  });
  test("tool_choice naming another kind of tool: the 400 says only function tools are supported", async () => {
    const tools = [{ type: "function", function: { name: "f" } }];
    for (const [path, body] of [
      ["/v1/chat/completions", { model: "tiny", messages: hi, tools, tool_choice: { type: "custom", custom: { name: "f" } } }],
      ["/v1/responses", { model: "tiny", input: "hi", tool_choice: { type: "web_search_preview" } }],
    ] as const) {
      const r = await post(path, body);
      expect([r.status, r.body.error.param]).toEqual([400, "tool_choice"]);
      expect(r.body.error.message).toContain("only function tools are supported");
      expect(r.body.error.message).not.toContain("tool_choice: tool_choice"); // the field named once (second fix-attack run)
      expect(r.body.error.message.match(/tool_choice/g)?.length).toBe(1);
    }
    const odd = await post("/v1/chat/completions", { model: "tiny", messages: hi, tools, tool_choice: "sometimes" });
    expect([odd.status, odd.body.error.param, odd.body.error.message]).toEqual([400, "tool_choice", expect.stringContaining("none")]);
  });
});

