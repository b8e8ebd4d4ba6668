/**
 * Issue 9 items 9 and 10. Publicness was decided on the normalised path, so
 * /v1/models/..%2f..%2fhealth reached the models handler without a key. /ready
 * listed model ids to keys without the models scope. The failed-auth throttle
 * ran after the key check (5 bad keys, then the right key got 200), and was
 * keyed on the exact address, so rotating 127/8 sources were never throttled.
 * Over raw sockets against a listening server.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { listenApp, makeApp, makeEngine } from "../helpers";
import { rawHttp } from "./request-helpers";

const engine = await makeEngine();
let ctx: Awaited<ReturnType<typeof makeApp>>;
let port: number;
beforeAll(async () => {
  ctx = await makeApp({ engine, config: { rateLimit: { authFailuresPerMinute: 3, anonymousRpm: 0 } },
    keys: [{ name: "full", scopes: ["chat", "models"] }, { name: "chat-only", scopes: ["chat"] }] });
  port = Number(new URL(listenApp(ctx.app)).port);
});
afterAll(async () => { await ctx.app.stop(true); await engine.dispose(); });

const get = (path: string, key?: string, from?: string) => rawHttp(port,
  `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${key ? `Authorization: Bearer ${key}\r\n` : ""}Connection: close\r\n\r\n`, 30_000, from);

test("a path that normalises to /health is judged by the route it reaches", async () => {
  const paths = ["/v1/models/..%2f..%2fhealth", "/swagger/assets/..%2f..%2fhealth", "/health/", "//health", "/HEALTH"];
  for (const [i, p] of paths.entries()) { // one source address each: no failed-auth throttle in the way
    expect({ p, status: (await get(p, undefined, `127.0.0.${100 + i}`)).status }).toEqual({ p, status: 401 });
  }
  // Encoded dot segments are resolved by the URL parser before routing: this one really is /health.
  expect((await get("/v1/models/%2e%2e/%2e%2e/health", undefined, "127.0.0.100")).status).toBe(200);
  // and a key without the models scope cannot reach the models handler through it
  expect((await get("/v1/models/..%2f..%2fhealth", ctx.keys[1], "127.0.0.110")).status).toBe(403);
  expect((await get("/health", undefined, "127.0.0.100")).status).toBe(200);
});

test("/ready names the models only to keys with the models scope", async () => {
  const chatOnly = JSON.parse((await get("/ready", ctx.keys[1])).body);
  expect(chatOnly.status).toBe("ready");
  expect(chatOnly.models).toBeUndefined();
  expect(JSON.parse((await get("/ready", ctx.keys[0])).body).models).toEqual(["tiny"]);
});

// Operations run: this test held that "even the right key is refused" once a source is throttled; on the loopback
// bind (one network) that let any local process lock out every client. Failures stay throttled; the right key is served.
test("once throttled, failed attempts get 429 and the right key is still served", async () => {
  const from = "127.0.0.50";
  const bad = "apk_0123456789abcdef_" + "x".repeat(43);
  const seen: number[] = [];
  for (let i = 0; i < 4; i++) seen.push((await get("/v1/models", bad, from)).status);
  expect(seen).toEqual([401, 401, 401, 429]);
  expect((await get("/v1/models", ctx.keys[0], from)).status).toBe(200);
  const again = await get("/v1/models", bad, from);
  expect(again.status).toBe(429);
  expect(again.headers["retry-after"]).toMatch(/^\d+$/);
});

test("rotating source addresses within loopback are throttled as one network", async () => {
  const bad = "apk_0123456789abcdef_" + "y".repeat(43);
  const seen: number[] = [];
  for (let i = 0; i < 40; i++) seen.push((await get("/v1/models", bad, `127.0.${1 + (i % 200)}.${2 + i}`)).status);
  expect(seen.filter((s) => s === 429).length).toBeGreaterThan(20); // one failure per address: only the network limit can do this
});

test("the network's share is a setting: rateLimit.authFailureNetworkFactor", async () => {
  const own = await makeApp({ engine, clock: () => 1e12, config: { rateLimit: { authFailuresPerMinute: 3, authFailureNetworkFactor: 2, anonymousRpm: 0 } } });
  const ownPort = Number(new URL(listenApp(own.app)).port);
  const bad = "apk_0123456789abcdef_" + "z".repeat(43);
  const seen: number[] = [];
  for (let i = 0; i < 10; i++) {
    seen.push((await rawHttp(ownPort, `GET /v1/models HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${bad}\r\nConnection: close\r\n\r\n`, 30_000, `127.0.9.${10 + i}`)).status);
  }
  expect(seen).toEqual([401, 401, 401, 401, 401, 401, 429, 429, 429, 429]); // 3 × 2 failures, then the network is throttled
  await own.app.stop(true);
});
