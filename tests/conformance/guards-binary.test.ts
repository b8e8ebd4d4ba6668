/**
 * The red team's guard findings of the last stop, the way an attacker meets them: the compiled binary over real
 * HTTP. The in-process tests (tests/guards/refused-limits, auth, anonymous-limits) hold the wider cases; each case
 * here failed against a binary built before the fixes (3917e39): refused requests were never rate-limited, a
 * metrics key could tokenize, and the public docs had no per-address limit with auth on.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startBinary, type BinaryServer } from "./binary-server";

const PER_MINUTE = 4;
let server: BinaryServer;
beforeAll(async () => {
  server = await startBinary([], [["--scopes", "chat,models", "--rpm", String(PER_MINUTE)], ["--scope", "metrics", "--rpm", String(PER_MINUTE)]],
    { APPLIANCE_RATE_LIMIT__ANONYMOUS_RPM: String(PER_MINUTE) });
});
afterAll(async () => { expect(await server.stop()).toBe(0); });

/** Statuses of `n` requests sent one after another. */
async function statuses(n: number, path: string, init: RequestInit = {}): Promise<{ codes: number[]; limitHeaders: number }> {
  const codes: number[] = [];
  let limitHeaders = 0;
  for (let i = 0; i < n; i++) {
    const r = await fetch(server.baseURL + path, init);
    await r.arrayBuffer();
    codes.push(r.status);
    if (r.headers.get("x-ratelimit-remaining-requests") !== null) limitHeaders++;
  }
  return { codes, limitHeaders };
}

/** The key's budget is taken by the first PER_MINUTE; the rest are 429 (a minute's refill cannot come within the run). */
const spent = (codes: number[], first: number) => {
  expect(codes.slice(0, PER_MINUTE)).toEqual(Array(PER_MINUTE).fill(first));
  expect(codes.slice(PER_MINUTE)).toEqual(Array(codes.length - PER_MINUTE).fill(429));
};

test("a valid key's requests to unknown routes count against its rate limit, with its headers on every answer", async () => {
  const { codes, limitHeaders } = await statuses(PER_MINUTE + 3, "/v1/nope", { headers: { authorization: `Bearer ${server.keys[0]}` } });
  spent(codes, 404);
  expect(limitHeaders).toBe(codes.length);
});

test("a metrics key cannot tokenize (403), and its refused requests count against its rate limit", async () => {
  const { codes } = await statuses(PER_MINUTE + 2, "/tokenize", {
    method: "POST", headers: { authorization: `Bearer ${server.keys[1]}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", content: "hello" }),
  });
  spent(codes, 403);
});

test("with auth on, the public docs are limited per address without a key; GET /health never is", async () => {
  const { codes } = await statuses(PER_MINUTE + 2, "/swagger/json");
  spent(codes, 200);
  const health = await statuses(PER_MINUTE * 3, "/health");
  expect(health.codes).toEqual(Array(PER_MINUTE * 3).fill(200));
});
