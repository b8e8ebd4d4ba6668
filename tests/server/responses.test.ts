/** POST /v1/responses through the official SDK's client.responses: text, items, streaming events, structured output, tools. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { listenApp, makeApp } from "../helpers";

let ctx: Awaited<ReturnType<typeof makeApp>>;
let client: OpenAI;
let baseURL: string;

beforeAll(async () => {
  ctx = await makeApp({ keys: [{ name: "all", scopes: ["chat", "completions", "embeddings", "models"] }, { name: "embed-only", scopes: ["embeddings"] }] });
  baseURL = listenApp(ctx.app);
  client = new OpenAI({ apiKey: ctx.key, baseURL: `${baseURL}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await ctx.app.stop(true);
  await ctx.engine.dispose();
});

const error = (p: Promise<unknown>) => p.then(() => { throw new Error("expected an error"); }, (e) => e as InstanceType<typeof OpenAI.APIError>);
const weather = {
  type: "function" as const, name: "get_weather", strict: false, description: "weather",
  parameters: { type: "object", properties: { city: { type: "string", enum: ["Oslo", "Paris"] } }, required: ["city"] },
};

describe("responses", () => {
  test("text input and instructions → a completed response with output_text and usage", async () => {
    const r = await client.responses.create({ model: "tiny", input: "hello", instructions: "be brief", max_output_tokens: 8, temperature: 0 });
    expect(r.object).toBe("response");
    expect(r.id).toMatch(/^resp_/);
    expect(["completed", "incomplete"]).toContain(r.status!);
    expect(r.output[0]!.type).toBe("message");
    expect(typeof r.output_text).toBe("string");
    expect(r.usage!.output_tokens).toBeGreaterThan(0);
    expect(r.usage!.total_tokens).toBe(r.usage!.input_tokens + r.usage!.output_tokens);
    if (r.status === "incomplete") expect(r.incomplete_details!.reason).toBe("max_output_tokens");
  });

  // SDK run (stop 74): the SDK's types declare usage.input_tokens_details.cache_write_tokens and a function tool's
  // `strict` as required; the answer had neither (a tool echoed as sent, without `strict`).
  test("fields the SDK's types require: usage's cache_write_tokens, each function tool's strict (OpenAI's default true)", async () => {
    const tool = { type: "function" as const, name: "f", parameters: { type: "object", properties: { a: { type: "integer" } }, required: ["a"] } };
    for (const stream of [false, true]) {
      const req = { model: "tiny", input: "hi", max_output_tokens: 8, tools: [tool as never, { ...weather }] };
      let r: OpenAI.Responses.Response;
      if (!stream) r = await client.responses.create(req);
      else {
        let last: OpenAI.Responses.Response | undefined;
        for await (const e of await client.responses.create({ ...req, stream: true })) if (e.type === "response.completed" || e.type === "response.incomplete") last = e.response;
        r = last!;
      }
      expect(r.usage!.input_tokens_details).toEqual({ cached_tokens: expect.any(Number), cache_write_tokens: 0 });
      expect(r.tools.map((t) => (t as OpenAI.Responses.FunctionTool).strict)).toEqual([true, false]);
    }
  });

  test("streaming: named events in order, text deltas add up to the final text", async () => {
    const stream = await client.responses.create({ model: "tiny", input: [{ role: "user", content: "hello" }], max_output_tokens: 8, temperature: 0, stream: true });
    const types: string[] = [];
    let text = "", final: OpenAI.Responses.Response | undefined;
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === "response.output_text.delta") text += e.delta;
      if (e.type === "response.completed" || e.type === "response.incomplete") final = e.response;
    }
    expect(types.slice(0, 2)).toEqual(["response.created", "response.in_progress"]);
    expect(types).toContain("response.output_item.added");
    expect(types).toContain("response.output_text.done");
    expect(final).toBeDefined();
    expect(final!.output_text ?? (final!.output[0] as any).content[0].text).toBe(text);
    const plain = await client.responses.create({ model: "tiny", input: [{ role: "user", content: "hello" }], max_output_tokens: 8, temperature: 0 });
    expect(plain.output_text).toBe(text);
  });

  test("structured output through text.format", async () => {
    const r = await client.responses.create({
      model: "tiny", input: "give json", max_output_tokens: 200, temperature: 0,
      text: { format: { type: "json_schema", name: "x", schema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] } } },
    });
    expect(typeof JSON.parse(r.output_text).ok).toBe("boolean");
  });

  test("tool_choice allowed_tools: required over a subset calls a tool in it; a name not in tools → 400 naming it", async () => {
    const time = { ...weather, name: "get_time", parameters: { type: "object", properties: { zone: { type: "string", enum: ["UTC"] } }, required: ["zone"] } };
    const choice = (...names: string[]) => ({ type: "allowed_tools" as const, mode: "required" as const, tools: names.map((name) => ({ type: "function", name })) });
    const r = await client.responses.create({ model: "tiny", input: "time?", tools: [weather, time], tool_choice: choice("get_time"), max_output_tokens: 200, temperature: 0 });
    const calls = r.output.filter((o) => o.type === "function_call") as OpenAI.Responses.ResponseFunctionToolCall[];
    expect(calls.map((c) => c.name)).toEqual(["get_time"]);
    expect(r.tool_choice).toEqual(choice("get_time"));
    const e = await error(client.responses.create({ model: "tiny", input: "x", tools: [weather], tool_choice: choice("nope") }));
    expect([e.status, e.param]).toEqual([400, "tool_choice.tools[0].name"]);
  });

  test("a forced function tool: a function_call item; its output goes back as input items", async () => {
    const r = await client.responses.create({ model: "tiny", input: "weather?", tools: [weather], tool_choice: "required", max_output_tokens: 200, temperature: 0 });
    const call = r.output.find((o) => o.type === "function_call") as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call.name).toBe("get_weather");
    expect(["Oslo", "Paris"]).toContain(JSON.parse(call.arguments).city);
    const next = await client.responses.create({
      model: "tiny", tools: [weather], max_output_tokens: 4, temperature: 0,
      input: [{ role: "user", content: "weather?" }, call, { type: "function_call_output", call_id: call.call_id, output: "{\"t\":3}" }],
    });
    expect(next.status).not.toBe("failed");
  });

  test("streamed tool call: arguments events and the item", async () => {
    const stream = await client.responses.create({ model: "tiny", input: "weather?", tools: [weather], tool_choice: { type: "function", name: "get_weather" }, max_output_tokens: 200, temperature: 0, stream: true });
    let args = "";
    for await (const e of stream) if (e.type === "response.function_call_arguments.done") args = e.arguments;
    expect(["Oslo", "Paris"]).toContain(JSON.parse(args).city);
  });

  test("a streamed answer with no text and no call (a forced call cut short) announces every item its final response lists", async () => {
    const stream = await client.responses.create({ model: "tiny", input: "w", tools: [weather], tool_choice: "required", max_output_tokens: 3, temperature: 0, stream: true });
    const added: string[] = [], done: string[] = [];
    let final: { status: string; output: { id: string; type: string }[] } | undefined;
    for await (const e of stream) {
      if (e.type === "response.output_item.added") added.push(e.item.id!);
      if (e.type === "response.output_item.done") done.push(e.item.id!);
      if (e.type === "response.incomplete" || e.type === "response.completed") final = e.response as never;
    }
    expect(final!.status).toBe("incomplete");
    expect(final!.output.map((o) => o.type)).toEqual(["message"]); // as one answer has it: the empty, incomplete message
    expect(added).toEqual(final!.output.map((o) => o.id));
    expect(done).toEqual(added);
  });

  test("the SDK's stream helper output, echoed back as the next input (its parsed and parsed_arguments fields too)", async () => {
    // responses.stream().finalResponse() adds `parsed` to output_text parts and `parsed_arguments` to function calls;
    // `input.push(...response.output)`, the documented multi-turn pattern, was a 400 naming them.
    const input: OpenAI.Responses.ResponseInput = [{ role: "user", content: "weather?" }];
    // The SDK's types tell output items from input items; the API takes output items back as they are.
    const asInput = (output: unknown[]) => output as OpenAI.Responses.ResponseInputItem[];
    const body = { model: "tiny", tools: [weather], max_output_tokens: 200, temperature: 0, store: false };
    const called = await client.responses.stream({ ...body, input, tool_choice: "required" }).finalResponse();
    const call = called.output.find((o) => o.type === "function_call")!;
    expect(call).toHaveProperty("parsed_arguments");
    input.push(...asInput(called.output), { type: "function_call_output", call_id: call.call_id, output: "3 degrees" });
    const answered = await client.responses.stream({ ...body, input, max_output_tokens: 4 }).finalResponse();
    expect(answered.output[0]!.type).toBe("message");
    expect((answered.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0]).toHaveProperty("parsed");
    input.push(...asInput(answered.output), { role: "user", content: "and?" });
    const next = await client.responses.create({ ...body, input, max_output_tokens: 4 });
    expect(next.status).not.toBe("failed");
  });

  test("tool_choice auto beside text.format: a function_call item, or a message in the format, streamed or not", async () => {
    const format = { type: "json_schema" as const, name: "v", strict: true, schema: { type: "object", properties: { verdict: { type: "string", enum: ["yes", "maybe"] } }, required: ["verdict"], additionalProperties: false } };
    const check = (r: OpenAI.Responses.Response) => {
      expect(r.status).toBe("completed");
      const call = r.output.find((o) => o.type === "function_call");
      if (call) expect(["Oslo", "Paris"]).toContain(JSON.parse(call.arguments).city);
      // a streamed response.completed carries no output_text (the SDK adds it to created responses only)
      const text = r.output.flatMap((o) => (o.type === "message" ? o.content : [])).map((c) => (c.type === "output_text" ? c.text : "")).join("");
      if (!call) expect(["yes", "maybe"]).toContain(JSON.parse(text).verdict);
      return call ? "call" : "answer";
    };
    const body = { model: "tiny", input: "weather?", tools: [weather], tool_choice: "auto" as const, text: { format }, max_output_tokens: 200, temperature: 1 };
    for (let i = 0; i < 3; i++) {
      check(await client.responses.create(body));
      const stream = await client.responses.create({ ...body, stream: true });
      let done: OpenAI.Responses.Response | undefined;
      for await (const event of stream) if (event.type === "response.completed") done = event.response;
      check(done!);
    }
  });

  test("refusals from the chat path name the Responses fields (input, text.format, max_output_tokens), streamed or not", async () => {
    for (const stream of [false, true] as const) {
      const long = await error(client.responses.create({ model: "tiny", input: "word ".repeat(3000), max_output_tokens: 8, stream }));
      expect([long.status, long.code, long.param]).toEqual([400, "context_length_exceeded", "input"]);
      expect(long.message).toContain("max_output_tokens");
      expect(long.message).not.toContain("max_tokens ");
      const schema = await error(client.responses.create({ model: "tiny", input: "x", stream, text: { format: { type: "json_schema", name: "s", schema: { type: "nope" } } } }));
      expect(schema.status).toBe(400);
      expect(schema.param).toStartWith("text.format.schema");
      const loop = { $defs: { n: { $ref: "#/$defs/n" } }, type: "object", properties: { a: { $ref: "#/$defs/n" } } }; // no value: no grammar
      const bare = await error(client.responses.create({ model: "tiny", input: "x", stream, text: { format: { type: "json_schema", name: "s", schema: loop } } }));
      expect([bare.status, bare.param]).toEqual([400, "text.format"]);
      expect(bare.message).toContain("text.format");
      expect(bare.message).not.toContain("response_format");
    }
  });

  test("fields OpenAI accepts: background false, max_tool_calls, prompt_cache_retention; background true and conversation → 400 naming them", async () => {
    const r = await client.responses.create({ model: "tiny", input: "hi", max_output_tokens: 2, background: false, max_tool_calls: 2, prompt_cache_retention: "24h", text: { verbosity: "low" } } as never) as OpenAI.Responses.Response;
    expect(r.object).toBe("response");
    expect(r.text!.verbosity).toBe("low"); // echoed, as OpenAI does (it was dropped)
    for (const [extra, param] of [[{ background: true }, "background"], [{ conversation: "conv_1" }, "conversation"]] as const) {
      const e = await error(client.responses.create({ model: "tiny", input: "hi", max_output_tokens: 2, ...extra }));
      expect([e.status, e.param]).toEqual([400, param]);
    }
  });
  test("cut by max_output_tokens: the response and its message are both incomplete, streamed or not", async () => {
    const r = await client.responses.create({ model: "tiny", input: "hi", max_output_tokens: 1, temperature: 0 });
    expect([r.status, r.output[0]!.type, (r.output[0] as { status: string }).status]).toEqual(["incomplete", "message", "incomplete"]);
    const stream = await client.responses.create({ model: "tiny", input: "hi", max_output_tokens: 1, temperature: 0, stream: true });
    const done: string[] = [];
    for await (const e of stream) if (e.type === "response.output_item.done") done.push((e.item as { status: string }).status);
    expect(done).toEqual(["incomplete"]);
  });
  test("stateless: previous_response_id → 400 naming it", async () => {
    const e = await error(client.responses.create({ model: "tiny", input: "x", previous_response_id: "resp_123" }));
    expect([e.status, e.param]).toEqual([400, "previous_response_id"]);
  });

  test("an image input → 400 unsupported_content; a key without the chat scope → 403", async () => {
    const e = await error(client.responses.create({ model: "tiny", input: [{ role: "user", content: [{ type: "input_image", image_url: "data:,", detail: "auto" }] }] }));
    expect([e.status, e.code, e.param]).toEqual([400, "unsupported_content", "input[0].content[0]"]);
    // a function's output may hold parts too (OpenAI takes images and files there): named the same way
    const call = { type: "function_call" as const, call_id: "c1", name: "get_weather", arguments: "{}" };
    for (const part of [{ type: "input_image" as const, image_url: "data:image/png;base64,AAAA", detail: "auto" as const }, { type: "input_file" as const, file_data: "data:,", filename: "a.txt" }]) {
      const f = await error(client.responses.create({ model: "tiny", tools: [weather],
        input: [{ role: "user", content: "q" }, call, { type: "function_call_output", call_id: "c1", output: [{ type: "input_text", text: "see" }, part] }] }));
      expect([f.status, f.code, f.param]).toEqual([400, "unsupported_content", "input[2].output[1]"]);
      expect(f.message).toContain(`'${part.type}' content is not supported`);
    }
    const embedOnly = new OpenAI({ apiKey: ctx.keys[1]!, baseURL: `${baseURL}/v1`, maxRetries: 0 });
    expect((await error(embedOnly.responses.create({ model: "tiny", input: "x" }))).status).toBe(403);
  });
});

describe("text.format json_object with a schema (llama-server's and vLLM's extension, as chat takes it)", () => {
  test("the output is JSON of that schema; a bad one is a 400 naming text.format", async () => {
    const post = (schema: object) => fetch(`${baseURL}/v1/responses`, {
      method: "POST", headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", input: "hi", max_output_tokens: 30, text: { format: { type: "json_object", schema } } }),
    });
    const r = await post({ type: "object", properties: { a: { const: "x" } }, required: ["a"] });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { output: { type: string; content?: { text: string }[] }[] };
    const text = body.output.find((o) => o.type === "message")!.content![0]!.text;
    expect(JSON.parse(text)).toEqual({ a: "x" });
    const bad = await post({ type: "hiccup" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toStartWith("text.format");
  });
});
