/** LangChain JS (@langchain/openai) against the compiled binary, as a LangChain app written for OpenAI uses it. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { AIMessage, HumanMessage, ToolMessage } from "@langchain/core/messages";
import { tool } from "@langchain/core/tools";
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { z } from "zod";
import OpenAI from "openai";
import { occupySlot, startBinary, type BinaryServer } from "./binary-server";
import { tokenText } from "../helpers";

let server: BinaryServer;
const chat = (extra: Record<string, unknown> = {}) => new ChatOpenAI({
  model: "tiny", apiKey: server.key, configuration: { baseURL: `${server.baseURL}/v1` }, maxTokens: 8, maxRetries: 0, ...extra,
});

beforeAll(async () => { server = await startBinary([], [["--rpm", "1"]]); });
afterAll(async () => { expect(await server.stop()).toBe(0); });

const weather = {
  type: "function" as const,
  function: { name: "get_weather", description: "weather", parameters: { type: "object", properties: { city: { type: "string", enum: ["Oslo", "Paris"] } }, required: ["city"] } },
};
const okSchema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };

describe("ChatOpenAI", () => {
  test("invoke, stream, and a conversation with the returned AIMessage in it", async () => {
    const m = chat();
    const first = await m.invoke("hello");
    expect(typeof first.content).toBe("string");
    let streamed = "";
    for await (const c of await m.stream("hello")) streamed += c.content;
    expect(typeof streamed).toBe("string");
    const second = await m.invoke([new HumanMessage("hello"), first, new HumanMessage("more")]);
    expect(typeof second.content).toBe("string");
  });

  test("withStructuredOutput: jsonMode and jsonSchema", async () => {
    // The same request as the openai-SDK json_object test (greedy on this prompt closes its object within 64 tokens).
    const json = await chat({ maxTokens: 64, temperature: 0 }).withStructuredOutput(okSchema, { method: "jsonMode" }).invoke("json please");
    expect(typeof json).toBe("object");
    const schema = await chat({ maxTokens: 200, temperature: 0 }).withStructuredOutput(okSchema, { method: "jsonSchema", name: "ok" }).invoke("json");
    expect(typeof (schema as { ok: boolean }).ok).toBe("boolean");
  });

  test("bindTools with a forced choice; the call and a ToolMessage go back", async () => {
    const m = chat({ maxTokens: 200, temperature: 0 }).bindTools([weather], { tool_choice: "get_weather" });
    const r = await m.invoke("weather?");
    expect(r.tool_calls![0]!.name).toBe("get_weather");
    expect(["Oslo", "Paris"]).toContain(r.tool_calls![0]!.args.city);
    const next = await chat().bindTools([weather]).invoke([
      new HumanMessage("weather?"), r, new ToolMessage({ tool_call_id: r.tool_calls![0]!.id!, content: "3 degrees" }),
    ]);
    expect(next).toBeInstanceOf(AIMessage);
  });

  test("the tool loop as LangChain agents run it: tool.invoke(call) answers a ToolMessage carrying the tool's name, sent back", async () => {
    const getWeather = tool(async ({ city }) => `3 degrees in ${city}`, {
      name: "get_weather", description: "weather", schema: z.object({ city: z.enum(["Oslo", "Paris"]) }),
    });
    const m = chat({ maxTokens: 200, temperature: 0 }).bindTools([getWeather], { tool_choice: "get_weather" });
    const r = await m.invoke("weather?");
    const answer = await getWeather.invoke(r.tool_calls![0]!);
    expect(answer).toBeInstanceOf(ToolMessage);
    expect(answer.name).toBe("get_weather"); // @langchain/openai sends it as the tool message's `name`
    const next = await chat().bindTools([getWeather]).invoke([new HumanMessage("weather?"), r, answer]);
    expect(next).toBeInstanceOf(AIMessage);
  });

  test("streamed tool call chunks add up to the call", async () => {
    const m = chat({ maxTokens: 200, temperature: 0 }).bindTools([weather], { tool_choice: "required" });
    let full: Awaited<ReturnType<typeof m.invoke>> | undefined;
    for await (const c of await m.stream("weather?")) full = full ? full.concat(c) : c;
    expect(full!.tool_calls![0]!.name).toBe("get_weather");
  });

  test("logprobs: invoke and stream (each chunk's tokens spell its content); n=2 through generate", async () => {
    type Lp = { content: { token: string; top_logprobs: unknown[] }[] };
    const m = chat({ logprobs: true, topLogprobs: 2, seed: 4, maxTokens: 10 });
    const r = await m.invoke("hello");
    const lp = r.response_metadata.logprobs as Lp;
    expect(tokenText(lp.content.map((t) => t.token))).toBe(r.content as string);
    expect(lp.content.every((t) => t.top_logprobs.length === 2)).toBe(true);
    let streamed = "", tokens = "";
    for await (const c of await m.stream("hello")) {
      streamed += c.content as string;
      const chunkLp = c.response_metadata.logprobs as Lp | null | undefined;
      if (c.content) expect(tokenText(chunkLp!.content.map((t) => t.token))).toBe(c.content as string);
      tokens += tokenText(chunkLp?.content.map((t) => t.token) ?? []);
    }
    expect(streamed.length).toBeGreaterThan(0);
    expect(tokens).toBe(streamed);
    const two = await chat({ n: 2, seed: 4, maxTokens: 4, streaming: true }).generate([[new HumanMessage("hi")]]);
    expect(two.generations[0]).toHaveLength(2);
  });

  test("the Responses API (useResponsesApi): invoke, stream, the returned AIMessage sent back, a forced tool call", async () => {
    // Greedy: sampled freely, the tiny model ends at its first token now and then (2 in 900 streams here: output_tokens 0)
    // and streams no text; a CI run streamed "" here. This test is about the wire, not about sampling.
    const m = chat({ useResponsesApi: true, temperature: 0 });
    const first = await m.invoke("hello");
    expect(first).toBeInstanceOf(AIMessage);
    expect(typeof first.text).toBe("string");
    expect(first.usage_metadata!.output_tokens).toBeGreaterThan(0);
    let streamed = "";
    for await (const c of await m.stream("hello")) streamed += c.text;
    expect(streamed.length).toBeGreaterThan(0);
    const second = await m.invoke([new HumanMessage("hello"), first, new HumanMessage("more")]);
    expect(second).toBeInstanceOf(AIMessage);
    const call = await chat({ useResponsesApi: true, maxTokens: 200, temperature: 0 }).bindTools([weather], { tool_choice: "get_weather" }).invoke("weather?");
    expect(call.tool_calls![0]!.name).toBe("get_weather");
    expect(["Oslo", "Paris"]).toContain(call.tool_calls![0]!.args.city);
  });
});

describe("embeddings and errors", () => {
  test("OpenAIEmbeddings: unit vectors", async () => {
    const e = new OpenAIEmbeddings({ model: "tiny", apiKey: server.key, configuration: { baseURL: `${server.baseURL}/v1` }, maxRetries: 0 });
    const [v] = await e.embedDocuments(["hello"]);
    expect(Math.hypot(...v!)).toBeCloseTo(1, 4);
    expect(Math.hypot(...(await e.embedQuery("x")))).toBeCloseTo(1, 4);
  });

  test("errors keep their class and status: 400, 401, 404, 429 (the openai SDK's errors, with LangChain's lc_error_code)", async () => {
    const fail = (p: Promise<unknown>) => p.then(() => null, (e) => e);
    const bad = await fail(chat({ temperature: 5 }).invoke("x"));
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.status).toBe(400);
    const cases = [
      [chat({ apiKey: "nope" }), OpenAI.AuthenticationError, 401, "MODEL_AUTHENTICATION"],
      [chat({ model: "nope" }), OpenAI.NotFoundError, 404, "MODEL_NOT_FOUND"],
    ] as const;
    for (const [m, cls, code, lc] of cases) {
      const e = await fail(m.invoke("x"));
      expect(e).toBeInstanceOf(cls);
      expect([e.status, e.lc_error_code]).toEqual([code, lc]);
    }
    await chat({ apiKey: server.keys[0]! }).invoke("x");
    const limited = await fail(chat({ apiKey: server.keys[0]! }).invoke("x"));
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    expect([limited.status, limited.lc_error_code]).toEqual([429, "MODEL_RATE_LIMIT"]);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  test("503 with Retry-After when the queue is full, before any stream byte (invoke, stream, Responses stream)", async () => {
    const busy = await startBinary(["--parallel", "1", "--max-queue", "0"]);
    try {
      const release = await occupySlot(busy);
      const m = (extra: Record<string, unknown> = {}) => new ChatOpenAI({
        model: "tiny", apiKey: busy.key, configuration: { baseURL: `${busy.baseURL}/v1` }, maxTokens: 2, maxRetries: 0, ...extra,
      });
      const drain = async (s: AsyncIterable<unknown>) => { for await (const _ of s); };
      const errors = [
        await m().invoke("x").then(() => null, (e) => e),
        await m().stream("x").then(drain).then(() => null, (e) => e),
        await m({ useResponsesApi: true }).stream("x").then(drain).then(() => null, (e) => e),
      ];
      release();
      for (const e of errors) {
        expect(e).toBeInstanceOf(OpenAI.InternalServerError);
        expect(e.status).toBe(503);
        expect(e.headers.get("retry-after")).toBe("1");
      }
    } finally {
      await busy.stop();
    }
  });
});
