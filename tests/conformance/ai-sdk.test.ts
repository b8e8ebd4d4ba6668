/**
 * The Vercel AI SDK against the compiled binary: @ai-sdk/openai-compatible
 * (chat completions) and @ai-sdk/openai (its default model speaks the
 * Responses API), as an application written for OpenAI uses them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { APICallError, embed, embedMany, generateObject, generateText, jsonSchema, Output, streamText, tool } from "ai";
import { occupySlot, startBinary, type BinaryServer } from "./binary-server";
import { tokenText } from "../helpers";

let server: BinaryServer;
let compatible: ReturnType<typeof createOpenAICompatible>;
let openai: ReturnType<typeof createOpenAI>;

beforeAll(async () => {
  server = await startBinary([], [["--rpm", "1"]]);
  compatible = createOpenAICompatible({ name: "appliance", baseURL: `${server.baseURL}/v1`, apiKey: server.key, supportsStructuredOutputs: true });
  openai = createOpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: server.key });
});
afterAll(async () => { expect(await server.stop()).toBe(0); });

const weather = tool({
  description: "Weather in a city",
  inputSchema: jsonSchema<{ city: "Oslo" | "Paris" }>({ type: "object", properties: { city: { type: "string", enum: ["Oslo", "Paris"] } }, required: ["city"] }),
  execute: async ({ city }) => `${city}: 3 degrees`,
});
const okSchema = jsonSchema<{ ok: boolean }>({ type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false });

for (const [name, model] of [["openai-compatible (chat)", () => compatible("tiny")], ["openai (responses)", () => openai("tiny")]] as const) {
  describe(name, () => {
    test("generateText, then a second turn with the response messages appended", async () => {
      // The server stores nothing, so the Responses API leg sends items, not references to stored ones.
      const providerOptions = { openai: { store: false } };
      // Seeded: sampled freely, the tiny model ends at its first token now and then (1 in ~450 here) and writes nothing.
      const first = await generateText({ model: model(), prompt: "hello", maxOutputTokens: 8, seed: 2, maxRetries: 0, providerOptions });
      expect(typeof first.text).toBe("string");
      expect(first.usage.outputTokens).toBeGreaterThan(0);
      const messages = [{ role: "user" as const, content: "hello" }, ...first.response.messages, { role: "user" as const, content: "more" }];
      const second = await generateText({ model: model(), maxOutputTokens: 4, maxRetries: 0, messages, providerOptions });
      expect(typeof second.text).toBe("string");
      if (name.startsWith("openai (responses)")) {
        // With the SDK's default (store: true) it sends item_reference: refused by name, with the way out.
        const e = await generateText({ model: model(), maxOutputTokens: 4, maxRetries: 0, messages }).then(() => null, (err) => err);
        expect(e.statusCode ?? e.lastError?.statusCode).toBe(400);
        expect(e.responseBody ?? e.lastError?.responseBody).toContain("store = false");
      }
    });

    test("streamText", async () => {
      const r = streamText({ model: model(), prompt: "hello", maxOutputTokens: 8, maxRetries: 0 });
      let text = "";
      for await (const t of r.textStream) text += t;
      expect(text).toBe(await r.text);
    });

    test("generateText with tools and structured output (tool_choice auto beside a json_schema): a call or the typed object", async () => {
      const providerOptions = { openai: { store: false } };
      for (const seed of [1, 2, 3]) {
        const r = await generateText({ model: model(), tools: { weather }, experimental_output: Output.object({ schema: okSchema }), prompt: "weather?", maxOutputTokens: 200, seed, maxRetries: 0, providerOptions });
        if (r.toolCalls.length) expect(["Oslo", "Paris"]).toContain((r.toolCalls[0]!.input as { city: string }).city);
        else expect(typeof r.experimental_output.ok).toBe("boolean");
      }
    });

    test("generateObject (json_schema)", async () => {
      const r = await generateObject({ model: model(), schema: okSchema, prompt: "json", maxOutputTokens: 200, temperature: 0, maxRetries: 0 });
      expect(typeof r.object.ok).toBe("boolean");
    });

    test("generateObject without a schema (output: no-schema → json_object)", async () => {
      // The same prompt as the openai-SDK json_object test (greedy closes its object within 64 tokens).
      const r = await generateObject({ model: model(), output: "no-schema", prompt: "json please", maxOutputTokens: 64, temperature: 0, maxRetries: 0 });
      const body = r.request.body;
      expect(typeof body === "string" ? body : JSON.stringify(body)).toContain('"json_object"');
      expect(typeof r.object).toBe("object");
      expect(r.object).not.toBeNull();
    });

    test("a forced tool call runs the tool and its result goes back for the next step", async () => {
      const r = await generateText({
        model: model(), prompt: "weather?", tools: { weather }, toolChoice: { type: "tool", toolName: "weather" },
        maxOutputTokens: 200, temperature: 0, maxRetries: 0,
      });
      expect(r.toolCalls[0]!.toolName).toBe("weather");
      expect(r.toolResults[0]!.output).toMatch(/^(Oslo|Paris): 3 degrees$/);
      const next = await generateText({
        model: model(), messages: [{ role: "user", content: "weather?" }, ...r.response.messages], tools: { weather }, maxOutputTokens: 4, maxRetries: 0,
        providerOptions: { openai: { store: false } },
      });
      expect(typeof next.text).toBe("string");
    });

    test("a streamed forced tool call", async () => {
      const r = streamText({ model: model(), prompt: "weather?", tools: { weather }, toolChoice: "required", maxOutputTokens: 200, temperature: 0, maxRetries: 0 });
      const calls = await r.toolCalls;
      expect(calls[0]!.toolName).toBe("weather");
    });
  });
}

describe("logprobs (@ai-sdk/openai: providerOptions.openai.logprobs)", () => {
  type Lp = { token: string; logprob: number; top_logprobs: unknown[] };
  for (const [name, model] of [["chat", () => openai.chat("tiny")], ["responses", () => openai("tiny")]] as const) {
    test(`${name}: generateText and streamText return tokens spelling the text`, async () => {
      const providerOptions = { openai: { logprobs: 2, store: false } };
      // Greedy: the AI SDK sends no seed to the Responses API, and sampled freely the tiny model now and then ended at
      // once, leaving the stream no logprobs at all (CI run at 918ceea).
      const r = await generateText({ model: model(), prompt: "hello", maxOutputTokens: 8, temperature: 0, seed: 2, maxRetries: 0, providerOptions });
      const whole = (r.providerMetadata!.openai!.logprobs as Lp[][]).flat();
      expect(tokenText(whole.map((t) => t.token))).toBe(r.text);
      expect(whole.length).toBeGreaterThan(0);
      for (const t of whole) expect(t.top_logprobs).toHaveLength(2);
      const s = streamText({ model: model(), prompt: "hello", maxOutputTokens: 8, temperature: 0, seed: 2, maxRetries: 0, providerOptions });
      const text = await s.text;
      const streamed = ((await s.providerMetadata)!.openai!.logprobs as Lp[][]).flat();
      expect(tokenText(streamed.map((t) => t.token))).toBe(text);
    });
  }
});

describe("embeddings and errors", () => {
  test("embed and embedMany: unit vectors", async () => {
    const one = await embed({ model: compatible.embeddingModel("tiny"), value: "hello", maxRetries: 0 });
    expect(Math.hypot(...one.embedding)).toBeCloseTo(1, 4);
    const many = await embedMany({ model: openai.embedding("tiny"), values: ["a", "b"], maxRetries: 0 });
    expect(many.embeddings).toHaveLength(2);
  });

  test("APICallError carries the status: 400, 401, 404, 429", async () => {
    // maxRetries: 0 throws the APICallError itself (no RetryError around it); anything else is not a status.
    const status = (p: Promise<unknown>) => p.then(() => 0, (e) => (APICallError.isInstance(e) ? e.statusCode : e));
    expect(await status(generateText({ model: compatible("tiny"), prompt: "x", temperature: 5, maxRetries: 0 }))).toBe(400);
    const bad = createOpenAICompatible({ name: "x", baseURL: `${server.baseURL}/v1`, apiKey: "nope" });
    expect(await status(generateText({ model: bad("tiny"), prompt: "x", maxRetries: 0 }))).toBe(401);
    expect(await status(generateText({ model: compatible("nope"), prompt: "x", maxRetries: 0 }))).toBe(404);
    const limited = createOpenAICompatible({ name: "x", baseURL: `${server.baseURL}/v1`, apiKey: server.keys[0]! });
    await generateText({ model: limited("tiny"), prompt: "x", maxOutputTokens: 2, maxRetries: 0 });
    expect(await status(generateText({ model: limited("tiny"), prompt: "x", maxOutputTokens: 2, maxRetries: 0 }))).toBe(429);
  });

  test("503 with Retry-After when the queue is full, before any stream byte: APICallError statusCode 503 (chat, chat streamed, Responses streamed)", async () => {
    const busy = await startBinary(["--parallel", "1", "--max-queue", "0"]);
    try {
      const release = await occupySlot(busy);
      const chat = createOpenAICompatible({ name: "busy", baseURL: `${busy.baseURL}/v1`, apiKey: busy.key });
      const responses = createOpenAI({ baseURL: `${busy.baseURL}/v1`, apiKey: busy.key });
      const errors: unknown[] = [await generateText({ model: chat("tiny"), prompt: "x", maxOutputTokens: 2, maxRetries: 0 }).then(() => null, (e) => e)];
      for (const model of [chat("tiny"), responses("tiny")]) {
        // streamText reports a failed call as an error part of its stream (and to onError), not as a rejection.
        const s = streamText({ model, prompt: "x", maxOutputTokens: 2, maxRetries: 0, onError: () => {} });
        let error: unknown = null;
        for await (const part of s.fullStream) if (part.type === "error") error = part.error;
        errors.push(error);
      }
      release();
      for (const e of errors) {
        expect(APICallError.isInstance(e)).toBe(true);
        const err = e as APICallError;
        expect(err.statusCode).toBe(503);
        expect(err.isRetryable).toBe(true);
        expect(err.responseHeaders!["retry-after"]).toBe("1");
      }
    } finally {
      await busy.stop();
    }
  });
});
