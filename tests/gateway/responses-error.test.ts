/**
 * A Responses stream that breaks after it began ends with OpenAI's Responses error event (`event: error`,
 * `{"type":"error","code","message","param","sequence_number"}`), which the AI SDK reads as the stream's error; it
 * was a chat-style `{"error":…}` that the AI SDK rejected as a type validation failure (scale-out run), and the
 * openai SDK still raises it as an APIError. Here a recording upstream's chat stream ends after its first text.
 */
import { createOpenAI } from "@ai-sdk/openai";
import { streamText } from "ai";
import { afterAll, beforeAll, expect, test } from "bun:test";
import OpenAI from "openai";
import { chatChunk, recordingUpstream, startGateway, type GatewayApp } from "./gateway-helpers";

const enc = new TextEncoder();
const up = recordingUpstream((_req, seen) => {
  if (seen.path.endsWith("/models")) return Response.json({ object: "list", data: [] });
  return new Response(new ReadableStream({
    start(c) {
      c.enqueue(enc.encode(`data: ${JSON.stringify(chatChunk({ role: "assistant", content: "Hello there, " }))}\n\n`));
      c.close(); // the upstream's stream ends mid-answer: no finish_reason, no [DONE]
    },
  }), { headers: { "content-type": "text/event-stream" } });
});
let gw: GatewayApp;
beforeAll(async () => { gw = await startGateway({ upstreams: [{ url: up.url, models: ["remote"] }] }); });
afterAll(async () => { await gw?.close(); up.stop(); });

test("the raw stream: the last event is a Responses error event, numbered after the one before it", async () => {
  const r = await fetch(`${gw.baseURL}/v1/responses`, {
    method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "remote", input: "hi", stream: true }),
  });
  const events = (await r.text()).trim().split("\n\n").map((block) => ({
    name: /^event: (.*)$/m.exec(block)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as Record<string, unknown>,
  }));
  const last = events.at(-1)!, before = events.at(-2)!;
  expect(last.name).toBe("error");
  expect(last.data).toMatchObject({ type: "error", code: expect.any(String), message: expect.stringMatching(/upstream/i), sequence_number: (before.data.sequence_number as number) + 1 });
});

test("the AI SDK's Responses model reports the upstream's failure as the stream's error; the openai SDK raises it", async () => {
  const model = createOpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1` }).responses("remote");
  const errors: unknown[] = [];
  const result = streamText({ model, prompt: "hi", onError: ({ error }) => { errors.push(error); } });
  for await (const _ of result.fullStream) { /* drain */ }
  expect(errors).toHaveLength(1);
  expect(JSON.stringify(errors[0])).toMatch(/upstream/i);
  expect(JSON.stringify(errors[0])).not.toMatch(/TypeValidationError/);
  const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
  const err = await (async () => { for await (const _ of await client.responses.create({ model: "remote", input: "hi", stream: true })) { /* drain */ } })().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OpenAI.APIError);
});
