/**
 * A revocation written to one instance's keys file without the Redis settings (an operator on that
 * host ran `keys revoke` with only --state-dir) still spreads: that server publishes the revocations
 * it reads in its own file, and an instance with its own copy of the file refuses the key.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import type { LlamaEngine } from "../../src/engine/llama";
import { KeyStore, keysFilePath } from "../../src/guards/keys";
import { silentLogger } from "../../src/log/logger";
import { createServer } from "../../src/server/create-server";
import { RedisConn } from "../../src/guards/store/redis-conn";
import { SharedRevocations } from "../../src/guards/store/revocations";
import { makeEngine, req, tinyModel, tmpDir, until } from "../helpers";
import { redisMissing, startRedis, type RedisServer } from "./redis-server";

const skip = redisMissing("tests/guards/redis-revocation.test.ts");
let redis: RedisServer;
let engine: LlamaEngine;
beforeAll(async () => { if (skip) return; redis = await startRedis(); engine = await makeEngine(); }, 60_000);
afterAll(async () => { if (skip) return; await redis?.kill(); await engine?.dispose(); });

async function instance(stateDir: string) {
  const config = parseConfig({ stateDir, model: [await tinyModel()], rateLimit: { store: "redis", redisUrl: redis.url } });
  const keys = new KeyStore(keysFilePath(stateDir));
  const { app, guards } = await createServer(config, { engine, keys, log: silentLogger() });
  return { app, keys, guards };
}

describe.skipIf(skip)("revocations published from a keys file", () => {
  test("revoked in A's file only: once A serves a request, B (its own copy of the file) refuses the key", async () => {
    const dirA = tmpDir("appliance-rev-a-");
    const dirB = tmpDir("appliance-rev-b-");
    const key = new KeyStore(keysFilePath(dirA)).create({ name: "leaked" }).key;
    const otherKey = new KeyStore(keysFilePath(dirA)).create({ name: "other" }).key;
    fs.copyFileSync(keysFilePath(dirA), path.join(dirB, "keys.json"));
    fs.chmodSync(path.join(dirB, "keys.json"), 0o600);
    const a = await instance(dirA);
    const b = await instance(dirB);
    const models = (i: typeof a) => i.app.handle(req("/v1/models", { key }));
    expect((await models(b)).status).toBe(200);

    new KeyStore(keysFilePath(dirA)).revoke("leaked"); // the file alone, as `keys revoke --state-dir` without Redis settings
    expect((await models(a)).status).toBe(401); // A reads its file, and publishes what it says
    expect(await until(async () => (await models(b)).status === 401 ? true : undefined, 10_000, "B to refuse the key")).toBe(true);
    expect(b.keys.list().find((k) => k.name === "leaked")!.revoked).toBeNull(); // B's own file never changed

    // A shared-limits run: Redis restarted empty, and A (whose file marks the key) never published it again, so B
    // accepted it once it read the empty list. A publishes again once it has seen the list gone.
    const id = a.keys.list().find((k) => k.name === "leaked")!.id;
    await redis.kill();
    await redis.start();
    const client = new RedisClient(redis.url);
    try {
      expect(await until(async () => {
        await a.app.handle(req("/v1/models", { key: otherKey })); // traffic on A, as any instance serves
        await models(b);
        return (await client.send("SISMEMBER", ["appliance:revoked", id])) === 1 ? true : undefined;
      }, 20_000, "A to publish the revocation again")).toBe(true);
      expect(await until(async () => (await models(b)).status === 401 ? true : undefined, 10_000, "B to refuse the key")).toBe(true);
    } finally {
      client.close();
    }
    a.guards.close();
    b.guards.close();
  });

  test("only the version key lost (the set kept): the list is published again once, not at every sync", async () => {
    const conn = new RedisConn({ url: redis.url, timeoutMs: 2000, log: silentLogger() });
    const client = new RedisClient(redis.url);
    let now = 0;
    const shared = new SharedRevocations({ conn, prefix: "vlost:", policy: "local", clock: () => now });
    try {
      await shared.publish(["k1"]);
      expect(await shared.isRevoked("k1")).toBe(true);
      await client.send("DEL", ["vlost:revoked:version"]);
      let published = 0;
      for (let i = 0; i < 5; i++) {
        now += 1_000; // past REVOCATION_MAX_AGE_MS: every call syncs
        const lost = shared.lost;
        expect(await shared.isRevoked("k1")).toBe(true);
        if (shared.lost !== lost) { published++; await shared.publish(["k1"]); } // what the guards do (guards/index.ts)
      }
      expect(published).toBe(1);
      expect(await client.send("GET", ["vlost:revoked:version"])).not.toBeNull();
    } finally {
      client.close();
      conn.close();
    }
  });
});

// Attack on the fix (stop 74): under "refuse", /metrics and /ready are answered during an outage; a key revoked on
// another instance before Redis went read them there (the fallback was "not revoked"): the last copy is read instead.
test.skipIf(skip)("refuse policy during an outage: a key revoked elsewhere before it stays refused on /metrics and /ready", async () => {
  const own = await startRedis();
  const dirA = tmpDir("appliance-rev-ops-a-"), dirB = tmpDir("appliance-rev-ops-b-");
  const key = new KeyStore(keysFilePath(dirA)).create({ name: "ops", scopes: ["metrics", "models"] }).key;
  fs.copyFileSync(keysFilePath(dirA), path.join(dirB, "keys.json"));
  fs.chmodSync(path.join(dirB, "keys.json"), 0o600);
  const make = async (dir: string) => {
    const config = parseConfig({ stateDir: dir, model: [await tinyModel()], rateLimit: { store: "redis", redisUrl: own.url, redisUnavailable: "refuse" } });
    return createServer(config, { engine, keys: new KeyStore(keysFilePath(dir)), log: silentLogger() });
  };
  const a = await make(dirA), b = await make(dirB);
  try {
    expect((await b.app.handle(req("/metrics", { key }))).status).toBe(200);
    new KeyStore(keysFilePath(dirA)).revoke("ops");
    expect((await a.app.handle(req("/metrics", { key }))).status).toBe(401); // A publishes it
    expect(await until(async () => (await b.app.handle(req("/metrics", { key }))).status === 401 ? true : undefined, 10_000, "B to refuse the key")).toBe(true);
    await own.kill();
    // refused still: as a wrong key there, with the 503 (its failed authentication cannot be counted without Redis),
    // never read (the first answer that is not the 401 from before the outage was a 200 with the whole exposition)
    for (const p of ["/metrics", "/ready"]) {
      let r: Response | undefined;
      expect(await until(async () => { r = await b.app.handle(req(p, { key })); return r.status !== 401 ? true : undefined; }, 10_000, `${p} past the outage`)).toBe(true);
      expect({ p, status: r!.status, code: ((await r!.json()) as { error?: { code: string } }).error?.code }).toEqual({ p, status: 503, code: "shared_state_unavailable" });
    }
  } finally { a.guards.close(); b.guards.close(); await own.kill(); }
});
