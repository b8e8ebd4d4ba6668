/** LangChain JS (@langchain/openai) against the compiled binary, as a LangChain app written for OpenAI uses it. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { AIMessage, HumanMessage, ToolMessage } from "@langchain/core/messages";
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { startBinary, type BinaryServer } from "./binary-server";

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
    expect(lp.content.map((t) => t.token).join("")).toBe(r.content as string);
    expect(lp.content.every((t) => t.top_logprobs.length === 2)).toBe(true);
    let streamed = "", tokens = "";
    for await (const c of await m.stream("hello")) {
      streamed += c.content as string;
      const chunkLp = c.response_metadata.logprobs as Lp | null | undefined;
      if (c.content) expect(chunkLp!.content.map((t) => t.token).join("")).toBe(c.content as string);
      tokens += chunkLp?.content.map((t) => t.token).join("") ?? "";
    }
    expect(streamed.length).toBeGreaterThan(0);
    expect(tokens).toBe(streamed);
    const two = await chat({ n: 2, seed: 4, maxTokens: 4, streaming: true }).generate([[new HumanMessage("hi")]]);
    expect(two.generations[0]).toHaveLength(2);
  });

  test("the Responses API (useResponsesApi)", async () => {
    const r = await chat({ useResponsesApi: true }).invoke("hello");
    expect(r).toBeInstanceOf(AIMessage);
  });
});

describe("embeddings and errors", () => {
  test("OpenAIEmbeddings: unit vectors", async () => {
    const e = new OpenAIEmbeddings({ model: "tiny", apiKey: server.key, configuration: { baseURL: `${server.baseURL}/v1` }, maxRetries: 0 });
    const [v] = await e.embedDocuments(["hello"]);
    expect(Math.hypot(...v!)).toBeCloseTo(1, 4);
    expect(Math.hypot(...(await e.embedQuery("x")))).toBeCloseTo(1, 4);
  });

  test("errors keep their status: 400, 401, 404, 429", async () => {
    const status = (p: Promise<unknown>) => p.then(() => 0, (e) => e.status ?? e.cause?.status);
    expect(await status(chat({ temperature: 5 }).invoke("x"))).toBe(400);
    expect(await status(chat({ apiKey: "nope" }).invoke("x"))).toBe(401);
    expect(await status(chat({ model: "nope" }).invoke("x"))).toBe(404);
    await chat({ apiKey: server.keys[0]! }).invoke("x");
    expect(await status(chat({ apiKey: server.keys[0]! }).invoke("x"))).toBe(429);
  });
});
