/**
 * A request refused by the token limit never took its reservation, so it must not be refunded
 * either: before the fix, settle() gave every refused request its reservation back, so a key could
 * refill its own token bucket by sending requests too big to run. The clock is frozen: no refill.
 */
import { expect, test } from "bun:test";
import { makeApp, req } from "../helpers";

test("a request refused for tokens does not refund the reservation it never took", async () => {
  const now = Date.now();
  const { app, key } = await makeApp({ clock: () => now, keys: [{ name: "t", tpm: 100, rpm: 0 }] });
  const chat = (maxTokens: number) => app.handle(req("/v1/chat/completions", { key, json: { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: maxTokens } }));
  const first = await chat(4);
  expect(first.status).toBe(200);
  const used = ((await first.json()) as { usage: { total_tokens: number } }).usage.total_tokens;
  expect(used).toBeGreaterThan(0);
  // 100 - used tokens left; each of these reserves ~95, more than that and less than a full bucket's worth of refund
  for (let i = 0; i < 3; i++) {
    const r = await chat(90);
    expect(r.status).toBe(429);
    expect(r.headers.get("x-ratelimit-remaining-tokens")).toBe(String(100 - used));
    await r.arrayBuffer();
  }
});
