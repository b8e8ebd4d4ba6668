/**
 * A gateway's own metrics for what it relays (scale-out run): time to first token and tokens/s were never recorded
 * for upstream streams (only the local engine marked the first token), and the `upstream:<url>` routing note was
 * counted as a guard decision, split at the URL's colons into a series per upstream. A recording upstream streams a
 * chat answer whose last events are held until the client has read its first chunk (no sleeps).
 */
import { afterAll, expect, test } from "bun:test";
import { chatChunk, recordingUpstream, startGateway, type GatewayApp } from "./gateway-helpers";

let rest!: () => void;
const restSent = new Promise<void>((r) => { rest = r; });
const enc = new TextEncoder();
const event = (e: unknown) => enc.encode(`data: ${JSON.stringify(e)}\n\n`);
const up = recordingUpstream((req, seen) => {
  if (seen.path.endsWith("/models")) return Response.json({ object: "list", data: [{ id: "remote", object: "model", created: 1, owned_by: "x" }] });
  return new Response(new ReadableStream({
    async start(c) {
      // The role and the first text in one event: the relay has taken it (and sent the role on) before the client reads.
      c.enqueue(event(chatChunk({ role: "assistant", content: "hello" })));
      await restSent;
      c.enqueue(event(chatChunk({ content: " world" })));
      c.enqueue(event(chatChunk({}, "stop")));
      c.enqueue(event({ ...chatChunk({}), choices: [], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } }));
      c.enqueue(enc.encode("data: [DONE]\n\n"));
      c.close();
    },
  }), { headers: { "content-type": "text/event-stream" } });
});
let gw: GatewayApp;
afterAll(async () => { await gw?.close(); up.stop(); });

const sample = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);

test("a relayed stream records time to first token and tokens/s; routing notes make no guard series", async () => {
  gw = await startGateway({ upstreams: [{ url: up.url, models: ["remote"] }] });
  const r = await fetch(`${gw.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "remote", stream: true, messages: [{ role: "user", content: "hi" }] }),
  });
  expect(r.status).toBe(200);
  const reader = r.body!.getReader();
  let got = new TextDecoder().decode((await reader.read()).value); // the role chunk (the scanner may still hold "hello")
  rest(); // the upstream's remaining events only now: the generation took measurable time after its first token
  for (;;) { const { done, value } = await reader.read(); if (done) break; got += new TextDecoder().decode(value); }
  expect(got).toContain("[DONE]");
  const text = await gw.app.deps.metrics.render();
  expect(sample(text, 'appliance_time_to_first_token_seconds_count\\{route="/v1/chat/completions"\\}')).toBe(1);
  expect(sample(text, "appliance_generation_tokens_per_second_count")).toBe(1);
  expect(text).not.toMatch(/appliance_guard_decisions_total\{[^}]*guard="upstream"/);
});
