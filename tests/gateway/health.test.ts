/**
 * Active health checks (run on demand here; serve runs them every
 * healthIntervalMs): a failing check takes the upstream out of the balancer, a
 * passing one brings it back. Checks carry the upstream's key and follow no redirect.
 */
import { afterAll, expect, test } from "bun:test";
import { recordingUpstream, startGateway } from "./gateway-helpers";

let down = false;
const up = recordingUpstream((_req, s) => {
  if (s.path.endsWith("/models")) return down ? new Response(null, { status: 302, headers: { location: "http://127.0.0.1:1/" } }) : Response.json({ data: [] });
  return Response.json({ id: "c", object: "chat.completion", created: 1, model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
});
afterAll(() => up.stop());

test("an upstream failing its health check gets no requests (503, Retry-After = the check period) until a check passes", async () => {
  const gw = await startGateway({ upstreams: [{ url: up.url, apiKey: "hk", models: ["m"] }], gateway: { healthIntervalMs: 5_000 } } as never);
  const chat = () => fetch(`${gw.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
  });
  try {
    await gw.gateway.health.checkAll();
    expect((await chat()).status).toBe(200);

    down = true; // a redirect is a failed check, never followed
    await gw.gateway.health.checkAll();
    expect(gw.gateway.pool.all[0]!.healthy).toBe(false);
    const sent = up.seen.length;
    const res = await chat();
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect((await res.json() as { error: { message: string } }).error.message).toContain("failing health checks");
    expect(up.seen.length).toBe(sent); // nothing reached it
    const ready = await fetch(`${gw.baseURL}/ready`, { headers: { authorization: `Bearer ${gw.key}` } });
    expect(ready.status).toBe(503); // no local model and no usable upstream
    expect(((await ready.json()) as { error: { message: string } }).error.message).toContain("no upstream is usable"); // scale-out run: it said "no model is loaded yet"

    down = false;
    await gw.gateway.health.checkAll();
    expect((await chat()).status).toBe(200);
    const checks = up.seen.filter((s) => s.path === "/v1/models");
    expect(checks.length).toBe(3);
    for (const c of checks) expect(c.headers.authorization).toBe("Bearer hk");
  } finally {
    await gw.close();
  }
});

// Scale-out run (stop 74): a health check answered 429 (the upstream key's own rate limit, which the checks spend
// too) took a working upstream out of the balancer: every upstream at once when they share the key's budget, and
// clients got "failing health checks" instead of the upstream's busy answer and its Retry-After.
test("a health check answered 429 keeps the upstream in the balancer: it is alive, only busy", async () => {
  let busy = false;
  const u = recordingUpstream((_req, s) => {
    if (busy) return Response.json({ error: { message: "rate limited", type: "rate_limit_error", code: "rate_limit_exceeded" } }, { status: 429, headers: { "retry-after": "20" } });
    if (s.path.endsWith("/models")) return Response.json({ data: [] });
    return Response.json({ id: "c", object: "chat.completion", created: 1, model: "m",
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
  });
  const gw = await startGateway({ upstreams: [{ url: u.url, models: ["m"] }], gateway: { healthIntervalMs: 5_000, retries: 0 } } as never);
  try {
    busy = true;
    await gw.gateway.health.checkAll();
    expect(gw.gateway.pool.all[0]!.healthy).toBe(true);
    const res = await fetch(`${gw.baseURL}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }) });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("20"); // the upstream's own, not the health period
    expect(((await res.json()) as { error: { message: string } }).error.message).not.toContain("failing health checks");
  } finally { await gw.close(); u.stop(); }
});
