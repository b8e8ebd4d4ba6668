/**
 * The official `openai` JS SDK against the compiled binary: what a client
 * written for OpenAI does, unchanged.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { zodFunction, zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
import { startBinary, type BinaryServer } from "./binary-server";
import { tokenText } from "../helpers";

let server: BinaryServer;
let client: OpenAI;

beforeAll(async () => {
  server = await startBinary([], [["--rpm", "1"]]);
  client = new OpenAI({ apiKey: server.key, baseURL: `${server.baseURL}/v1`, maxRetries: 0 });
});
afterAll(async () => { expect(await server.stop()).toBe(0); });

const weather: OpenAI.Chat.Completions.ChatCompletionTool = {
  type: "function",
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string", enum: ["Oslo", "Paris"] } }, required: ["city"] } },
};
const user = (content: string) => [{ role: "user" as const, content }];

describe("chat", () => {
  test("answer, stream, and multi-turn with the returned message echoed back", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: user("hello"), max_tokens: 8 });
    expect(r.choices[0]!.message.role).toBe("assistant");
    const stream = client.chat.completions.stream({ model: "tiny", messages: user("hello"), max_tokens: 8 });
    const done = await stream.finalChatCompletion();
    expect(typeof done.choices[0]!.message.content).toBe("string");
    const next = await client.chat.completions.create({ model: "tiny", messages: [...user("hello"), r.choices[0]!.message, ...user("more")], max_tokens: 4 });
    expect(next.choices).toHaveLength(1);
  });
  test("json_schema through the SDK's parse helper", async () => {
    const r = await client.chat.completions.parse({
      model: "tiny", messages: user("json"), max_tokens: 200, temperature: 0,
      response_format: { type: "json_schema", json_schema: { name: "x", strict: true, schema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false } } },
    });
    expect(typeof (r.choices[0]!.message.parsed as unknown as { ok: boolean }).ok).toBe("boolean");
  });
  test("parse() with zod tools and a zod response_format, tool_choice auto: a parsed answer or a parsed call, streamed or not", async () => {
    const body = {
      model: "tiny", messages: user("weather?"), max_tokens: 200, temperature: 1,
      tools: [zodFunction({ name: "get_weather", parameters: z.object({ city: z.enum(["Oslo", "Paris"]) }) })],
      response_format: zodResponseFormat(z.object({ verdict: z.enum(["yes", "maybe"]) }), "verdict"),
    };
    const check = (m: { parsed: { verdict: string } | null; tool_calls?: { function: { parsed_arguments: unknown } }[] }) => {
      if (m.tool_calls?.length) expect(["Oslo", "Paris"]).toContain((m.tool_calls[0]!.function.parsed_arguments as { city: string }).city);
      else expect(["yes", "maybe"]).toContain(m.parsed!.verdict);
    };
    for (const seed of [1, 2, 3]) {
      check((await client.chat.completions.parse({ ...body, seed })).choices[0]!.message as never);
      check((await client.chat.completions.stream({ ...body, seed }).finalChatCompletion()).choices[0]!.message as never);
    }
  });
  test("tools: a forced call, streamed through the SDK's stream helper, and its result sent back", async () => {
    const stream = client.chat.completions.stream({ model: "tiny", messages: user("weather?"), tools: [weather], tool_choice: "required", max_tokens: 200 });
    const done = await stream.finalChatCompletion();
    const call = done.choices[0]!.message.tool_calls![0]! as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(["Oslo", "Paris"]).toContain(JSON.parse(call.function.arguments).city);
    const next = await client.chat.completions.create({
      model: "tiny", tools: [weather], max_tokens: 4,
      messages: [...user("weather?"), done.choices[0]!.message, { role: "tool", tool_call_id: call.id, content: "3 degrees" }],
    });
    expect(next.choices[0]!.message.role).toBe("assistant");
  });
  test("logprobs and top_logprobs, in the SDK's types", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: user("x"), max_tokens: 6, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0]!.logprobs!.content!;
    expect(tokenText(content.map((t) => t.token))).toBe(r.choices[0]!.message.content!);
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs).toHaveLength(2);
    }
    const e = await client.chat.completions.create({ model: "tiny", messages: user("x"), top_logprobs: 2 }).catch((err) => err);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe("top_logprobs");
  });
});

describe("logprobs, streams of several choices, the deprecated functions", () => {
  test("streamed logprobs through the SDK's stream helper: the accumulated tokens spell the answer", async () => {
    const stream = client.chat.completions.stream({ model: "tiny", messages: user("hello"), max_tokens: 12, seed: 3, logprobs: true, top_logprobs: 2 });
    const done = await stream.finalChatCompletion();
    const content = done.choices[0]!.logprobs!.content!;
    expect(content.length).toBeGreaterThan(0);
    expect(tokenText(content.map((t) => t.token))).toBe(done.choices[0]!.message.content!);
    for (const t of content) expect(t.top_logprobs).toHaveLength(2);
  });
  test("n=2 streamed: the SDK's final completion has both choices, as without streaming", async () => {
    const body = { model: "tiny", messages: user("hi"), max_tokens: 6, seed: 8, n: 2 };
    const done = await client.chat.completions.stream(body).finalChatCompletion();
    const whole = await client.chat.completions.create(body);
    expect(done.choices.map((c) => c.message.content)).toEqual(whole.choices.map((c) => c.message.content));
  });
  test("completions: echo with logprobs (the prompt's tokens first), streamed logprobs", async () => {
    const r = await client.completions.create({ model: "tiny", prompt: "the cat", max_tokens: 4, seed: 1, logprobs: 1, echo: true });
    expect(r.choices[0]!.text.startsWith("the cat")).toBe(true);
    expect(tokenText(r.choices[0]!.logprobs!.tokens!)).toBe(r.choices[0]!.text);
    let text = "", tokens = "";
    for await (const c of await client.completions.create({ model: "tiny", prompt: "the cat", max_tokens: 6, seed: 1, logprobs: 1, stream: true })) {
      text += c.choices[0]?.text ?? "";
      tokens += tokenText(c.choices[0]?.logprobs?.tokens ?? []);
    }
    expect(tokens).toBe(text);
  });
  test("responses: logprobs with include, streamed and not", async () => {
    const body = { model: "tiny", input: "hello", max_output_tokens: 8, top_logprobs: 1, include: ["message.output_text.logprobs" as const] };
    const r = await client.responses.create(body);
    const part = (r.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText;
    expect(tokenText(part.logprobs!.map((t) => t.token))).toBe(part.text);
    const final = await client.responses.stream(body).finalResponse();
    const streamed = (final.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText;
    expect(tokenText(streamed.logprobs!.map((t) => t.token))).toBe(streamed.text);
  });
  test("functions / function_call (deprecated, still OpenAI's): message.function_call, and its result sent back", async () => {
    const r = await client.chat.completions.create({
      model: "tiny", messages: user("weather?"), max_tokens: 200, functions: [weather.function], function_call: { name: "get_weather" },
    });
    const message = r.choices[0]!.message;
    expect(r.choices[0]!.finish_reason).toBe("function_call");
    expect(["Oslo", "Paris"]).toContain(JSON.parse(message.function_call!.arguments).city);
    const next = await client.chat.completions.create({
      model: "tiny", max_tokens: 4, functions: [weather.function],
      messages: [...user("weather?"), message, { role: "function", name: "get_weather", content: "3 degrees" }],
    });
    expect(next.choices[0]!.message.role).toBe("assistant");
  });
});

describe("embeddings and responses", () => {
  test("embeddings are unit vectors (the SDK's default base64)", async () => {
    const r = await client.embeddings.create({ model: "tiny", input: ["a", "b"] });
    for (const d of r.data) expect(Math.hypot(...d.embedding)).toBeCloseTo(1, 4);
  });
  test("responses: text, stream, structured output, a forced function call", async () => {
    const r = await client.responses.create({ model: "tiny", input: "hello", max_output_tokens: 8 });
    expect(typeof r.output_text).toBe("string");
    const stream = client.responses.stream({ model: "tiny", input: "hello", max_output_tokens: 8 });
    expect((await stream.finalResponse()).object).toBe("response");
    const call = await client.responses.create({
      model: "tiny", input: "weather?", max_output_tokens: 200, tool_choice: "required",
      tools: [{ type: "function", name: "get_weather", strict: true, parameters: weather.function.parameters! }],
    });
    expect(call.output.some((o) => o.type === "function_call")).toBe(true);
  });
  test("responses: a stream with no text and no call announces every item of its final response; a function's image output is named", async () => {
    const tools = [{ type: "function" as const, name: "get_weather", strict: true, parameters: weather.function.parameters! }];
    const added: string[] = [], done: string[] = [];
    let final: { status?: string; output: { id?: string }[] } | undefined;
    for await (const e of await client.responses.create({ model: "tiny", input: "w", tools, tool_choice: "required", max_output_tokens: 3, temperature: 0, stream: true })) {
      if (e.type === "response.output_item.added") added.push(e.item.id!);
      if (e.type === "response.output_item.done") done.push(e.item.id!);
      if (e.type === "response.incomplete" || e.type === "response.completed") final = e.response;
    }
    expect(final!.status).toBe("incomplete");
    expect(added).toEqual(final!.output.map((o) => o.id!));
    expect(done).toEqual(added);
    const e = await client.responses.create({ model: "tiny", tools, input: [{ role: "user", content: "q" },
      { type: "function_call", call_id: "c1", name: "get_weather", arguments: "{}" },
      { type: "function_call_output", call_id: "c1", output: [{ type: "input_image", image_url: "data:image/png;base64,AAAA", detail: "auto" }] }] })
      .then(() => undefined, (x: { status: number; code: string; param: string }) => x);
    expect([e?.status, e?.code, e?.param]).toEqual([400, "unsupported_content", "input[2].output[0]"]);
  });
});

describe("error classes", () => {
  test("400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 429 RateLimitError", async () => {
    const fail = (p: Promise<unknown>) => p.then(() => null, (e) => e);
    expect(await fail(client.chat.completions.create({ model: "tiny", messages: user("x"), temperature: 5 }))).toBeInstanceOf(OpenAI.BadRequestError);
    const anonymous = new OpenAI({ apiKey: "nope", baseURL: `${server.baseURL}/v1`, maxRetries: 0 });
    expect(await fail(anonymous.models.list())).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(await fail(client.chat.completions.create({ model: "nope", messages: user("x") }))).toBeInstanceOf(OpenAI.NotFoundError);
    const limited = new OpenAI({ apiKey: server.keys[0]!, baseURL: `${server.baseURL}/v1`, maxRetries: 0 });
    await limited.models.list();
    const e = await fail(limited.models.list());
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    expect(Number(e.headers.get("retry-after"))).toBeGreaterThan(0);
  });
  test("503 with Retry-After when the queue is full, before any stream byte (InternalServerError, status 503)", async () => {
    const busy = await startBinary(["--parallel", "1", "--max-queue", "0"]);
    try {
      const c = new OpenAI({ apiKey: busy.key, baseURL: `${busy.baseURL}/v1`, maxRetries: 0 });
      const abort = new AbortController();
      const long = await c.chat.completions.create({ model: "tiny", messages: user("go"), max_tokens: 1800, temperature: 0, stream: true }, { signal: abort.signal });
      const it = long[Symbol.asyncIterator]();
      while (!(await it.next()).value?.choices[0]?.delta.content);
      const e = await c.chat.completions.create({ model: "tiny", messages: user("x"), max_tokens: 2, stream: true }).then(() => null, (err) => err);
      abort.abort();
      expect(e).toBeInstanceOf(OpenAI.InternalServerError);
      expect(e.status).toBe(503);
      expect(e.headers.get("retry-after")).toBe("1");
    } finally {
      await busy.stop();
    }
  });
});

describe("structured output in the binary (grammars are embedded)", () => {
  test("json_object → JSON", async () => {
    const r = await client.chat.completions.create({
      model: "tiny", messages: [{ role: "user", content: "json please" }], max_tokens: 64, response_format: { type: "json_object" }, temperature: 0,
    });
    expect(() => JSON.parse(r.choices[0]!.message.content!)).not.toThrow();
  });
  test("json_schema without a schema → JSON", async () => {
    const r = await client.chat.completions.create({
      model: "tiny", messages: [{ role: "user", content: "json please" }], max_tokens: 64, temperature: 0,
      response_format: { type: "json_schema", json_schema: { name: "anything" } },
    });
    expect(() => JSON.parse(r.choices[0]!.message.content!)).not.toThrow();
  });
  test("completions with json_object → JSON", async () => {
    const r = await client.completions.create({ model: "tiny", prompt: "{", max_tokens: 64, temperature: 0, response_format: { type: "json_object" } } as never);
    expect(() => JSON.parse((r as OpenAI.Completion).choices[0]!.text)).not.toThrow();
  });
});
