/**
 * The gateway's timeouts, against upstreams that go silent: before their
 * response headers (first byte: the attempt fails and the client gets a 503
 * before anything was sent) and in the middle of a stream (idle: the client's
 * stream ends with an error event). Both count against the breaker.
 */
import { afterAll, expect, test } from "bun:test";
import OpenAI from "openai";
import { chatChunk, recordingUpstream, startGateway } from "./gateway-helpers";

const stops: (() => unknown)[] = [];
afterAll(async () => { for (const s of stops) await s(); });

const never = new Promise<never>(() => {});

test("no response headers within firstByteTimeoutMs: 503 with Retry-After, the breaker counts it", async () => {
  const up = recordingUpstream(async (_req, s) => (s.path.endsWith("/models") ? Response.json({ data: [] }) : never));
  stops.push(() => up.stop());
  const gw = await startGateway({ upstreams: [{ url: up.url, models: ["m"] }], gateway: { retries: 0, firstByteTimeoutMs: 300, breakerFailures: 1, healthIntervalMs: 0 } } as never);
  stops.push(() => gw.close());
  const res = await fetch(`${gw.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true }),
  });
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).not.toBeNull();
  const body = await res.json() as { error: { message: string; code: string } };
  expect(body.error.code).toBe("upstream_unavailable");
  expect(body.error.message).toContain("no answer within 300 ms");
  expect(body.error.message).not.toContain("127.0.0.1"); // the upstream's address is not the client's business
  expect(gw.gateway.pool.all[0]!.breaker.state).toBe("open");
});

test("a stream silent for idleTimeoutMs ends with an error the SDK raises", async () => {
  const enc = new TextEncoder();
  const up = recordingUpstream((_req, s) => (s.path.endsWith("/models") ? Response.json({ data: [] })
    : new Response(new ReadableStream({
      start(c) { c.enqueue(enc.encode(`data: ${JSON.stringify(chatChunk({ role: "assistant", content: "" }))}\n\n`)); }, // then nothing, ever
    }), { headers: { "content-type": "text/event-stream" } })));
  stops.push(() => up.stop());
  const gw = await startGateway({ upstreams: [{ url: up.url, models: ["m"] }], gateway: { retries: 0, idleTimeoutMs: 300, breakerFailures: 1, healthIntervalMs: 0 } } as never);
  stops.push(() => gw.close());
  const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true });
  const err = await (async () => { for await (const _ of stream) { /* read on */ } })().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OpenAI.APIError);
  expect((err as Error).message).toContain("no data within 300 ms");
  expect(gw.gateway.pool.all[0]!.breaker.state).toBe("open");
  expect(gw.gateway.pool.all[0]!.inflight).toBe(0);
});
