/**
 * When Redis goes away: rateLimit.redisUnavailable "local" keeps serving on this instance's own
 * limits (still limits, not none) and says so loudly in the log and in sharedState(); "refuse"
 * answers 503 shared_state_unavailable (never a 500). Both come back to the shared state once Redis
 * does. Also: the Redis password is read from a file, never from the config.
 */
import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { keys as keysCommand } from "../../src/cli/commands/keys";
import type { LlamaEngine } from "../../src/engine/llama";
import { KeyStore, keysFilePath } from "../../src/guards/keys";
import { makeApp, makeEngine, memoryLogger, req, tmpDir, until } from "../helpers";
import { redisMissing, startRedis, type RedisServer } from "./redis-server";
import { parseExposition, value, type Sample } from "../ops/prom";

const skip = redisMissing("tests/guards/redis-outage.test.ts");
let redis: RedisServer;
let engine: LlamaEngine;

beforeAll(async () => {
  if (skip) return;
  redis = await startRedis();
  engine = await makeEngine();
}, 60_000);
afterAll(async () => {
  if (skip) return;
  await redis?.kill();
  await engine?.dispose();
});

const app = async (policy: "local" | "refuse", url = redis.url, extra: Record<string, unknown> = {}) => {
  const { log, lines } = memoryLogger();
  const made = await makeApp({ engine, log, keys: [{ name: "k", rpm: 3 }],
    config: { rateLimit: { store: "redis", redisUrl: url, redisUnavailable: policy, ...extra } } as never });
  return { ...made, lines, status: () => made.app.deps.guards.sharedState() };
};
const models = (a: Awaited<ReturnType<typeof app>>) => a.app.handle(req("/v1/models", { key: a.key }));

describe.skipIf(skip)("Redis unreachable", () => {
  test("policy local serves with per-instance limits and logs it as an error; refuse answers 503; both recover", async () => {
    const local = await app("local");
    const refuse = await app("refuse");
    expect((await models(local)).status).toBe(200);
    expect((await models(refuse)).status).toBe(200);
    expect(local.status()).toMatchObject({ store: "redis", policy: "local", redisUp: true });

    await redis.kill();
    // local: served, and still limited (3/min on this instance alone: the shared count is out of reach)
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await models(local)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(local.status()).toMatchObject({ redisUp: false });
    const loud = local.lines.filter((l) => (l.level as number) >= 50 && String(l.msg).includes("Redis unreachable"));
    expect(loud.some((l) => String(l.msg).includes("per instance"))).toBe(true);
    expect(loud.length).toBeLessThanOrEqual(2); // one line when it went, one saying how requests are answered; not one per request

    // refuse: 503 with the OpenAI error shape and Retry-After, for a key and for a failed login alike
    for (const r of [await models(refuse), await refuse.app.handle(req("/v1/models", { key: "apk_0000000000000000_wrongwrongwrongwrongwrongwrongwrongwrongwro" }))]) {
      expect(r.status).toBe(503);
      expect(r.headers.get("retry-after")).toBe("1");
      expect(((await r.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: "shared_state_unavailable", type: "service_unavailable" });
    }
    expect(refuse.lines.some((l) => (l.level as number) >= 50 && String(l.msg).includes("refusing requests with 503"))).toBe(true);
    // ...but not the operator's view of it (scale-out run: /metrics and /ready were refused too, so redis_up 0 could
    // never be read): a valid key reads them; a wrong key still gets the 503 (its failure cannot be counted)
    const ops = await makeApp({ engine, log: memoryLogger().log, keys: [{ name: "ops", scopes: ["models", "metrics", "admin"] }],
      config: { rateLimit: { store: "redis", redisUrl: redis.url, redisUnavailable: "refuse" } } as never });
    const metrics = await ops.app.handle(req("/metrics", { key: ops.key }));
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^appliance_shared_state_redis_up\{policy="refuse"\} 0$/m);
    const ready = await ops.app.handle(req("/ready", { key: ops.key }));
    expect([ready.status, ((await ready.json()) as { sharedState?: { redisUp: boolean } }).sharedState?.redisUp]).toEqual([200, false]);
    expect((await ops.app.handle(req("/metrics", { key: "apk_0000000000000000_wrongwrongwrongwrongwrongwrongwrongwrongwro" }))).status).toBe(503);
    expect((await ops.app.handle(req("/v1/models", { key: ops.key }))).status).toBe(503);
    ops.app.deps.guards.close();

    await redis.start();
    // Reconnects are tried at most once a second, on the request path.
    expect(await until(async () => (await models(refuse)).status === 200 ? true : undefined, 20_000, "refuse to serve again")).toBe(true);
    await until(async () => { await models(local); return local.status().redisUp ? true : undefined; }, 20_000, "local to use Redis again");
    expect(local.lines.some((l) => String(l.msg).includes("Redis reachable again"))).toBe(true);
    local.app.deps.guards.close();
    refuse.app.deps.guards.close();
  });

  test("an operator sees it: /metrics counts what was answered without Redis, /ready (and /health with auth off) say whether it answers", async () => {
    const own = await startRedis();
    const scopes = ["models", "metrics", "admin"] as const;
    const { log } = memoryLogger();
    const made = await makeApp({ engine, log, keys: [{ name: "ops", scopes: [...scopes] }], config: { rateLimit: { store: "redis", redisUrl: own.url } } as never });
    const open = await makeApp({ engine, log, config: { auth: false, rateLimit: { store: "redis", redisUrl: own.url } } as never });
    // Read the way Prometheus reads it (the official client's parser refuses malformed text).
    const scrape = async () => parseExposition(await (await made.app.handle(req("/metrics", { key: made.key }))).text());
    const up = (ss: Sample[]) => ss.filter((s) => s.name === "appliance_shared_state_redis_up").map((s) => [s.labels, s.value]);
    const rateFallbacks = (ss: Sample[]) => value(ss, "appliance_shared_state_fallbacks_total", { operation: "rate_limit" });
    const ready = async (key?: string) => ((await (await made.app.handle(req("/ready", { key }))).json()) as { sharedState?: unknown }).sharedState;
    const health = async (a: typeof made) => ((await (await a.app.handle(req("/health"))).json()) as { sharedState?: unknown }).sharedState;
    try {
      expect((await models({ ...made, lines: [], status: () => made.app.deps.guards.sharedState() })).status).toBe(200);
      expect((await open.app.handle(req("/v1/models"))).status).toBe(200);
      let ss = await scrape();
      expect(up(ss)).toEqual([[{ policy: "local" }, 1]]);
      expect(ss.filter((s) => s.name === "appliance_shared_state_fallbacks_total").map((s) => s.labels.operation).sort())
        .toEqual(["auth_failure_limit", "concurrency_limit", "key_revocations", "rate_limit", "signature_nonces"]);
      expect(rateFallbacks(ss)).toBe(0);
      expect(await ready(made.key)).toMatchObject({ store: "redis", policy: "local", redisUp: true });
      expect(await health(open)).toMatchObject({ store: "redis", redisUp: true });

      await own.kill();
      for (let i = 0; i < 2; i++) expect((await made.app.handle(req("/v1/models", { key: made.key }))).status).toBe(200);
      expect((await open.app.handle(req("/v1/models"))).status).toBe(200);
      ss = await scrape();
      expect(up(ss)).toEqual([[{ policy: "local" }, 0]]);
      // Two requests' rate limits (and the scrape's own) were decided on this instance alone: counted, by operation.
      expect(rateFallbacks(ss)).toBeGreaterThanOrEqual(2);
      expect(await ready(made.key)).toMatchObject({ redisUp: false });
      expect(await health(open)).toMatchObject({ redisUp: false });
      // Public /health with auth on says nothing about it (a caller could learn that limits are per instance now),
      // nor does /ready to a caller with no key; neither shows the last error (it can name hosts).
      expect(await health(made)).toBeUndefined();
      expect(await ready()).toBeUndefined();
      expect(JSON.stringify(await ready(made.key))).not.toContain("lastError");
    } finally {
      await own.kill();
      made.app.deps.guards.close();
      open.app.deps.guards.close();
    }
  });

  test("a Redis that was never there: policy local serves (no 500) and sharedState says it is down", async () => {
    const gone = path.join(tmpDir("appliance-redis-none-"), "none.sock");
    const local = await app("local", `redis+unix://${gone}`);
    const all = await Promise.all(Array.from({ length: 3 }, () => models(local)));
    expect(all.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(local.status()).toMatchObject({ store: "redis", redisUp: false });
    local.app.deps.guards.close();
  });

  test("the password comes from redisPasswordFile; without it Redis refuses the login, which counts as unreachable", async () => {
    const locked = await startRedis(["--requirepass", "s3cret@pa:ss/1"]);
    try { await passwordCase(locked); } finally { await locked.kill(); }
  });

  async function passwordCase(locked: RedisServer) {
    const file = path.join(tmpDir("appliance-redis-pw-"), "redis.pass");
    fs.writeFileSync(file, "s3cret@pa:ss/1\n", { mode: 0o600 });
    const withPw = await app("refuse", locked.url, { redisPasswordFile: file });
    expect((await models(withPw)).status).toBe(200);
    expect(withPw.status()).toMatchObject({ redisUp: true });
    const without = await app("refuse", locked.url);
    expect((await models(without)).status).toBe(503);
    expect(JSON.stringify(without.lines)).not.toContain("s3cret");
    expect(JSON.stringify(withPw.lines)).not.toContain("s3cret");
    // Why, in Redis's own words (scale-out run: Bun's client said only "Connection closed", a network fault's words).
    const wrongFile = path.join(path.dirname(file), "wrong.pass");
    fs.writeFileSync(wrongFile, "not-it\n", { mode: 0o600 });
    const wrong = await app("refuse", locked.url, { redisPasswordFile: wrongFile });
    expect((await models(wrong)).status).toBe(503);
    for (const [a, reason] of [[without, "NOAUTH"], [wrong, "WRONGPASS"]] as const) {
      await until(() => a.lines.some((l) => String((l as { err?: unknown }).err).startsWith(reason)) || undefined, 10_000, `the ${reason} line`);
    }
    expect(JSON.stringify(wrong.lines)).not.toContain("not-it");
    withPw.app.deps.guards.close();
    without.app.deps.guards.close();
    wrong.app.deps.guards.close();
  }

  test("keys revoke while Redis is unreachable: the keys file says revoked, and exit 1 says the other instances were not told", async () => {
    const dir = tmpDir("appliance-redis-revoke-");
    new KeyStore(keysFilePath(dir)).create({ name: "gone" });
    const env = { APPLIANCE_RATE_LIMIT__STORE: "redis", APPLIANCE_RATE_LIMIT__REDIS_URL: `redis+unix://${path.join(dir, "no.sock")}` };
    Object.assign(process.env, env);
    const err = spyOn(console, "error").mockImplementation(() => {});
    const out = spyOn(console, "log").mockImplementation(() => {});
    try {
      expect(await keysCommand.run(["revoke", "gone", "--state-dir", dir])).toBe(1);
      expect(err.mock.calls.flat().join(" ")).toContain("Redis could not be told");
    } finally {
      err.mockRestore();
      out.mockRestore();
      for (const k of Object.keys(env)) delete process.env[k];
    }
    expect(new KeyStore(keysFilePath(dir)).list().find((k) => k.name === "gone")!.revoked).not.toBeNull();
  });

  test("keys revoke with a wrong Redis password says Redis refused the login (not Bun's \"Connection closed\"), without the password", async () => {
    const locked = await startRedis(["--requirepass", "right-one"]);
    const dir = tmpDir("appliance-redis-revoke-pw-");
    new KeyStore(keysFilePath(dir)).create({ name: "gone" });
    const wrong = path.join(dir, "redis.pass");
    fs.writeFileSync(wrong, "wrong-one\n", { mode: 0o600 });
    const env = { APPLIANCE_RATE_LIMIT__STORE: "redis", APPLIANCE_RATE_LIMIT__REDIS_URL: locked.url, APPLIANCE_RATE_LIMIT__REDIS_PASSWORD_FILE: wrong };
    Object.assign(process.env, env);
    const err = spyOn(console, "error").mockImplementation(() => {});
    const out = spyOn(console, "log").mockImplementation(() => {});
    try {
      expect(await keysCommand.run(["revoke", "gone", "--state-dir", dir])).toBe(1);
      const said = err.mock.calls.flat().join(" ");
      expect(said).toContain("Redis could not be told (Redis refused the login: WRONGPASS");
      expect(said).toContain("redisPasswordFile");
      expect(said).not.toContain("wrong-one");
    } finally {
      err.mockRestore();
      out.mockRestore();
      for (const k of Object.keys(env)) delete process.env[k];
      await locked.kill();
    }
  });
});
