/**
 * Second fix-attack run: a gateway shutting down (SIGTERM's grace period over: the drain sets deps.draining and
 * cancels what is in flight, server/listen.ts) answered a non-streamed request still waiting on its upstream with a
 * bodyless 499, though the client was still there and nothing had been generated; local requests get a 503 not_ready
 * with Retry-After, which the SDKs retry.
 */
import { afterEach, expect, test } from "bun:test";
import { recordingUpstream, startGateway } from "./gateway-helpers";

const cleanup: (() => unknown)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

test("a request waiting on its upstream when the gateway's drain cancels it: 503 not_ready with Retry-After", async () => {
  let arrived!: () => void;
  const asked = new Promise<void>((r) => { arrived = r; });
  const up = recordingUpstream((_req, s) => {
    if (s.path.endsWith("/models")) return Response.json({ data: [] });
    arrived();
    return new Promise<Response>(() => {}); // never answers: the drain must end it
  });
  cleanup.push(() => up.stop());
  const gw = await startGateway({ upstreams: [{ url: up.url, models: ["m"] }], gateway: { retries: 0, healthIntervalMs: 0 } } as never);
  cleanup.push(() => gw.close());
  const pending = fetch(`${gw.baseURL}/v1/chat/completions`, { method: "POST",
    headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }] }) });
  await asked;
  const deps = gw.app.deps;
  deps.draining = true; // what listen.ts's drain does once the grace period is over
  deps.inflight.cancelAll();
  const r = await pending;
  const body = await r.json() as { error: { code: string } };
  expect([r.status, r.headers.get("retry-after"), body.error.code]).toEqual([503, "1", "not_ready"]);
});
