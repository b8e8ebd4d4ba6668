/**
 * A valid key's refused requests (wrong scope, unknown route, a body that does not parse) count against its rate
 * limit like any other request and carry its x-ratelimit-* headers: before, they never reached the limiter, so a
 * key could send them without end, each one an audit record. Injected clock: no sleeping.
 */
import { expect, test } from "bun:test";
import { makeApp, makeEngine, req } from "../helpers";

const engine = await makeEngine();

test("403 (wrong scope) and 404 (unknown route) count against the key: x-ratelimit-* headers, then 429", async () => {
  let now = 2_000_000;
  const ctx = await makeApp({ engine, clock: () => now, keys: [{ name: "scraper", scopes: ["metrics"], rpm: 2 }, { name: "user", scopes: ["chat"], rpm: 2 }] });
  const [scraper, user] = ctx.keys;
  const models = await ctx.app.handle(req("/v1/models", { key: scraper }));
  expect(models.status).toBe(403);
  expect(models.headers.get("x-ratelimit-limit-requests")).toBe("2");
  expect(models.headers.get("x-ratelimit-remaining-requests")).toBe("1");
  const nope = await ctx.app.handle(req("/nope", { key: scraper }));
  expect(nope.status).toBe(404);
  expect(nope.headers.get("x-ratelimit-remaining-requests")).toBe("0");
  const over = await ctx.app.handle(req("/nope", { key: scraper }));
  expect(over.status).toBe(429);
  expect(over.headers.get("retry-after")).toBe("30");
  expect((await ctx.app.handle(req("/metrics", { key: scraper }))).status).toBe(429); // its own route too: the budget is spent

  // A normal key on /metrics, and a POST to an unknown route (its concurrency slot is freed, not leaked).
  expect((await ctx.app.handle(req("/metrics", { key: user }))).status).toBe(403);
  expect((await ctx.app.handle(req("/v1/nope", { key: user, json: { model: "tiny" } }))).status).toBe(404);
  expect((await ctx.app.handle(req("/nope", { key: user }))).status).toBe(429);
  now += 30_000;
  expect((await ctx.app.handle(req("/metrics", { key: scraper }))).status).toBe(200);
});

test("a body that does not parse counts too (it never reached the rate limiter's hook)", async () => {
  let now = 3_000_000;
  const ctx = await makeApp({ engine, clock: () => now, keys: [{ name: "j", rpm: 2 }] });
  const bad = () => ctx.app.handle(req("/v1/chat/completions", { key: ctx.key, body: "{not json", headers: { "content-type": "application/json" } }));
  const first = await bad();
  expect(first.status).toBe(400);
  expect(first.headers.get("x-ratelimit-remaining-requests")).toBe("1");
  expect((await bad()).status).toBe(400);
  expect((await bad()).status).toBe(429);
});
