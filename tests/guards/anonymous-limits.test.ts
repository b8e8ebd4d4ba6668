/**
 * With auth on, the public docs are requests without a key like any other: rateLimit.anonymousRpm per client
 * address (README, config schema). Before, the address limit ran only with auth off, so a client could pull the
 * 38 KB spec without end. GET /health stays unlimited: it is the liveness probe. Injected clock: no sleeping.
 */
import { expect, test } from "bun:test";
import path from "node:path";
import { makeApp, req, tmpDir } from "../helpers";

test("auth on: the public docs get anonymousRpm per address (429 once over, x-ratelimit-* headers); /health is never limited", async () => {
  let now = 4_000_000;
  const ctx = await makeApp({ clock: () => now, config: { rateLimit: { anonymousRpm: 3 } } });
  try {
    const spec = () => ctx.app.handle(req("/swagger/json"));
    const first = await spec();
    expect(first.status).toBe(200);
    expect(first.headers.get("x-ratelimit-limit-requests")).toBe("3");
    expect(first.headers.get("x-ratelimit-remaining-requests")).toBe("2");
    expect((await ctx.app.handle(req("/swagger"))).status).toBe(200);
    expect((await spec()).status).toBe(200);
    const over = await spec();
    expect(over.status).toBe(429);
    expect(over.headers.get("retry-after")).toBe("20");
    expect(((await over.json()) as any).error.type).toBe("rate_limit_error");
    expect((await ctx.app.handle(req("/swagger"))).status).toBe(429);
    for (let i = 0; i < 10; i++) expect((await ctx.app.handle(req("/health"))).status).toBe(200);
    expect((await ctx.app.handle(req("/v1/models", { key: ctx.key }))).status).toBe(200); // a key has its own budget
    now += 20_000;
    expect((await spec()).status).toBe(200);
  } finally {
    ctx.engine.dispose();
  }
});

test("the public docs need no shared state: with Redis gone and redisUnavailable refuse they are served, keyed routes get 503", async () => {
  const gone = path.join(tmpDir("appliance-redis-none-"), "none.sock");
  const ctx = await makeApp({ config: { rateLimit: { store: "redis", redisUrl: `redis+unix://${gone}`, redisUnavailable: "refuse" } } as never });
  try {
    expect((await ctx.app.handle(req("/v1/models", { key: ctx.key }))).status).toBe(503);
    expect((await ctx.app.handle(req("/swagger/json"))).status).toBe(200);
    expect((await ctx.app.handle(req("/health"))).status).toBe(200);
  } finally {
    ctx.app.deps.guards.close();
    ctx.engine.dispose();
  }
});
