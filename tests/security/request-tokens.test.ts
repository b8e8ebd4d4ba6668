/**
 * Issue 9 item 6: token limits were charged after the fact, so two concurrent
 * `max_tokens: 400` requests spent 806 tokens against a 20 tokens/minute key.
 * Now prompt + max_tokens are reserved when a request is admitted and the
 * unused part is refunded when it ends.
 */
import { afterAll, expect, test } from "bun:test";
import { makeApp, makeEngine, req } from "../helpers";

const engine = await makeEngine();
afterAll(() => engine.dispose());
const chat = (key: string, extra: Record<string, unknown> = {}) =>
  req("/v1/chat/completions", { key, json: { model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 400, ...extra } });

test("two concurrent max_tokens 400 requests on a 20 tokens/minute key: one runs, one is refused up front", async () => {
  const now = 1_000_000;
  const ctx = await makeApp({ engine, clock: () => now, keys: [{ name: "tpm", tpm: 20 }] });
  const [a, b] = await Promise.all([ctx.app.handle(chat(ctx.key)), ctx.app.handle(chat(ctx.key))]);
  expect([a.status, b.status].sort()).toEqual([200, 429]);
  const refused = a.status === 429 ? a : b;
  expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/tokens per minute/);
});

test("the unused part of the reservation is refunded: the key pays exactly what it used", async () => {
  const now = 2_000_000;
  const ctx = await makeApp({ engine, clock: () => now, keys: [{ name: "refund", tpm: 10_000 }] });
  const short = { response_format: { type: "json_schema", json_schema: { name: "k", schema: { type: "object", properties: { k: { const: "ok" } }, required: ["k"] } } } };
  const r = await ctx.app.handle(chat(ctx.key, short));
  expect(r.status).toBe(200);
  const used = ((await r.json()) as { usage: { total_tokens: number; completion_tokens: number } }).usage;
  expect(used.completion_tokens).toBeLessThan(400); // the grammar ends the answer early
  const after = await ctx.app.handle(req("/v1/models", { key: ctx.key }));
  expect(Number(after.headers.get("x-ratelimit-remaining-tokens"))).toBe(10_000 - used.total_tokens);
});
