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

// The red team's burst: the reservation counted one choice, so three concurrent n=16 chats on a 2,000 tokens/minute
// key were all admitted and generated 4,783 tokens in a second; the Responses API's max_output_tokens was not read.
const constSchema = { type: "object", properties: { k: { const: "ok" } }, required: ["k"] };
test("every choice is reserved (n × prompts × max_tokens), and the Responses API's max_output_tokens too", async () => {
  const now = 3_000_000;
  const ctx = await makeApp({ engine, clock: () => now, keys: [{ name: "n", tpm: 3_000 }] });
  const short = { response_format: { type: "json_schema", json_schema: { name: "k", schema: constSchema } } };
  const both = async (make: () => Request) => (await Promise.all([ctx.app.handle(make()), ctx.app.handle(make())])).map((r) => r.status).sort();
  // n=4 × 500: 2,000 each, so the second does not fit beside the first (one choice each: ~520, both fitted).
  expect(await both(() => chat(ctx.key, { ...short, n: 4, max_tokens: 500 }))).toEqual([200, 429]);
  const later = await makeApp({ engine, clock: () => now + 120_000, keys: [{ name: "p", tpm: 3_000 }] });
  // "/v1/completions/" reaches the same route: counted the same (it had been one choice).
  const completions = () => req("/v1/completions/", { key: later.key, json: { model: "tiny", prompt: ["a", "b", "c", "d"], max_tokens: 500, ...short } });
  expect(await Promise.all([later.app.handle(completions()), later.app.handle(completions())]).then((rs) => rs.map((r) => r.status).sort())).toEqual([200, 429]);
  const third = await makeApp({ engine, clock: () => now + 240_000, keys: [{ name: "r", tpm: 2_000 }] });
  const responses = () => req("/v1/responses", { key: third.key, json: { model: "tiny", input: "hello", max_output_tokens: 1_500,
    text: { format: { type: "json_schema", name: "k", schema: constSchema } } } });
  expect(await Promise.all([third.app.handle(responses()), third.app.handle(responses())]).then((rs) => rs.map((r) => r.status).sort())).toEqual([200, 429]);
});
