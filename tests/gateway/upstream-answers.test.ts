/**
 * What a gateway does with an upstream's odd answers (scale-out run): a 429's Retry-After was replaced by 1 (clients
 * came back every second); a stream whose first event is not JSON was a 200 then an error, though that event is read
 * before the 200 (now the attempt's failure, retried on another upstream); Bun's advice to its own developer reached
 * clients' error messages and the logs.
 */
import { afterAll, expect, test } from "bun:test";
import { plainMessage, retryAfterSeconds } from "../../src/gateway/errors";
import { chatChunk, recordingUpstream, startGateway, type GatewayApp } from "./gateway-helpers";

const enc = new TextEncoder();
const models = (seen: { path: string }) => seen.path.endsWith("/models");
const busy = recordingUpstream((_r, seen) => models(seen) ? Response.json({ object: "list", data: [] })
  : Response.json({ error: { message: "busy", type: "rate_limit_error" } }, { status: 429, headers: { "retry-after": "30" } }));
const garbage = recordingUpstream((_r, seen) => models(seen) ? Response.json({ object: "list", data: [] })
  : new Response("data: <html>Bad gateway</html>\n\n", { headers: { "content-type": "text/event-stream" } }));
const good = recordingUpstream((_r, seen) => models(seen) ? Response.json({ object: "list", data: [] })
  : new Response(enc.encode([chatChunk({ role: "assistant", content: "hello" }), chatChunk({}, "stop")].map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n"),
    { headers: { "content-type": "text/event-stream" } }));
const gws: GatewayApp[] = [];
afterAll(async () => { for (const g of gws) await g.close(); for (const u of [busy, garbage, good]) u.stop(); });

const chat = (gw: GatewayApp, model: string) => fetch(`${gw.baseURL}/v1/chat/completions`, {
  method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
  body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "hi" }] }),
});

test("an upstream's 429 Retry-After reaches the client", async () => {
  const gw = await startGateway({ upstreams: [{ url: busy.url, models: ["m"] }], gateway: { retries: 0 } });
  gws.push(gw);
  const r = await chat(gw, "m");
  expect([r.status, r.headers.get("retry-after")]).toEqual([503, "30"]);
  expect(retryAfterSeconds("Wed, 21 Oct 2099 07:28:00 GMT", Date.parse("Wed, 21 Oct 2099 07:27:00 GMT"))).toBe(60);
  expect(retryAfterSeconds("99999")).toBe(3600);
  expect(retryAfterSeconds("soon")).toBeUndefined();
});

test("a stream whose first event is not JSON fails the attempt before the 200: the client gets the other upstream's answer", async () => {
  const gw = await startGateway({ upstreams: [{ url: garbage.url, models: ["m"] }, { url: good.url, models: ["m"] }], gateway: { retries: 1, backoffMs: 0 } });
  gws.push(gw);
  for (let i = 0; i < 4; i++) {
    const r = await chat(gw, "m");
    expect(r.status).toBe(200);
    const body = await r.text();
    expect(body).toContain("hello");
    expect(body).not.toContain('"error"');
  }
  expect(garbage.seen.filter((s) => !models(s)).length).toBeGreaterThan(0); // it was tried, and passed over
});

test("Bun's advice to its developer is not part of an error's message", () => {
  expect(plainMessage(new Error("Unable to connect. Is the computer able to access the url?"))).toBe("Unable to connect.");
  expect(plainMessage(new Error("The socket connection was closed unexpectedly. For more information, pass `verbose: true` in the second argument to fetch()")))
    .toBe("The socket connection was closed unexpectedly.");
});

test("/tokenize of an upstream model says it is an upstream's (it said the model does not exist)", async () => {
  const gw = await startGateway({ upstreams: [{ url: good.url, models: ["m"] }] });
  gws.push(gw);
  const post = async (body: object) => (await fetch(`${gw.baseURL}/tokenize`, { method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" }, body: JSON.stringify(body) })).json() as Promise<{ error: { code: string; message: string } }>;
  expect((await post({ model: "m", content: "hi" })).error.code).toBe("unsupported_for_upstream");
  expect((await post({ content: "hi" })).error.message).toContain("no local model");
});

// Scale-out run: the two tiers' records could be linked only by time. The upstream request now carries the trace.
test("the upstream request continues the client's trace: traceparent with the gateway's own span as its parent", async () => {
  const gw = await startGateway({ upstreams: [{ url: good.url, models: ["m"] }] });
  gws.push(gw);
  const before = good.seen.length;
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const r = await fetch(`${gw.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json", traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    body: JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "hi" }] }),
  });
  await r.text();
  const gatewaySpan = r.headers.get("traceparent")!.split("-")[2];
  const sent = good.seen.slice(before).find((s) => s.path.endsWith("/chat/completions"))!;
  expect(sent.headers.traceparent).toBe(`00-${traceId}-${gatewaySpan}-01`);
});

// Fix-attack run, round 2: the first-event check looked at the first chunk only (a comment, an `event:` line or a line
// split over two reads came first), and an event that is JSON but not an object (null) crashed the relay (a 500 logged
// with its stack).
test("the first whole data line decides, however the stream begins; the upstream's own first error is retried too", async () => {
  const stream = (pieces: string[]) => new Response(new ReadableStream({
    // Each piece in its own turn of the event loop, so the gateway reads them apart.
    async start(c) { for (const p of pieces) { c.enqueue(enc.encode(p)); await new Promise((r) => setImmediate(r)); } c.close(); },
  }), { headers: { "content-type": "text/event-stream" } });
  const bad = [[": ping\n\n", "data: <html>oops</html>\n\n"], ["data: <ht", "ml>oops</html>\n\n"], ["event: message\n", "data: <html>\n\n"],
    ["data: null\n\n"], ["data: [1]\n\n"], ['data: {"error":{"message":"CUDA out of memory"}}\n\n'], ["data: [DONE]\n\n"]];
  let next = 0;
  const odd = recordingUpstream((_r, seen) => models(seen) ? Response.json({ object: "list", data: [] }) : stream(bad[next++ % bad.length]!));
  const gw = await startGateway({ upstreams: [{ url: odd.url, models: ["m"] }, { url: good.url, models: ["m"] }],
    gateway: { retries: 1, backoffMs: 0, breakerFailures: 100 } });
  gws.push(gw);
  try {
    while (next < bad.length) {
      const r = await chat(gw, "m");
      const body = await r.text();
      expect([r.status, body.includes("hello"), body.includes('"error"')]).toEqual([200, true, false]);
    }
  } finally { odd.stop(); }
});

test("a relayed event that is JSON but not an object ends the stream with an upstream error, not a crash", async () => {
  const lateNull = recordingUpstream((_r, seen) => models(seen) ? Response.json({ object: "list", data: [] })
    : new Response(enc.encode(`data: ${JSON.stringify(chatChunk({ role: "assistant", content: "hi" }))}\n\ndata: null\n\ndata: {"choices":[null]}\n\n`), { headers: { "content-type": "text/event-stream" } }));
  const gw = await startGateway({ upstreams: [{ url: lateNull.url, models: ["m"] }] });
  gws.push(gw);
  try {
    const body = await (await chat(gw, "m")).text();
    expect(body).toContain('"code":"upstream_error"');
    expect(body).not.toContain("internal_error");
  } finally { lateNull.stop(); }
});

// Red-team run (stop 72): the same bodies, non-streamed, were read as answers: a TypeError, a 500 internal_error.
test("a non-streamed answer that is JSON but not an object of the API is a 502 upstream_error on every route, not a 500", async () => {
  const bodies = ["null", "5", '"str"', "[]", '{"choices":[null]}', '{"choices":[5]}', '{"output":[null]}', '{"object":"list","data":[null]}'];
  let next = 0;
  const odd = recordingUpstream((_r, seen) => models(seen) ? Response.json({ object: "list", data: [] })
    : new Response(bodies[next++ % bodies.length], { headers: { "content-type": "application/json" } }));
  const gw = await startGateway({ upstreams: [{ url: odd.url, models: ["m"] }], gateway: { retries: 0, breakerFailures: 1000 } });
  gws.push(gw);
  try {
    const post = (path: string, body: object) => fetch(`${gw.baseURL}${path}`, { method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" }, body: JSON.stringify({ model: "m", ...body }) });
    const routes: [string, object][] = [["/v1/chat/completions", { messages: [{ role: "user", content: "hi" }] }],
      ["/v1/completions", { prompt: "hi" }], ["/v1/responses", { input: "hi" }], ["/v1/embeddings", { input: "hi" }]];
    for (let i = 0; i < bodies.length; i++) for (const [path, body] of routes) {
      next = i; // the same body for every route
      const r = await post(path, body);
      const text = await r.text();
      expect([path, bodies[i], r.status, text.includes("upstream_error")], text).toEqual([path, bodies[i], 502, true]);
    }
  } finally { odd.stop(); }
});
