#!/usr/bin/env bun
/**
 * bun scripts/bench-redis.ts [--requests N]
 *
 * What rateLimit.store "redis" adds to a request: the same authenticated GET /v1/models through
 * app.handle() (no network between client and server) with limits in memory vs in a local
 * redis-server on a unix socket: one script per request with a valid key (the key's admit; the failed-auth
 * throttle's checks run only for a key that fails), plus one GET of the revocation version every 500 ms. Alternating batches, so both see the same machine load. Prints p50/p99 of each
 * and the difference. Needs redis-server on PATH.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load";
import { KeyStore, keysFilePath } from "../src/guards/keys";
import { silentLogger } from "../src/log/logger";
import { createServer } from "../src/server/create-server";
import { startRedis } from "../tests/guards/redis-server";
import fs from "node:fs";
import { madeTmpDirs, makeEngine, tmpDir } from "../tests/helpers";

// The temp dirs it makes go when it ends (bun test's preload removes them for tests; a script has none: they were left behind).
process.on("exit", () => { for (const d of madeTmpDirs) fs.rmSync(d, { recursive: true, force: true }); });

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { requests: { type: "string", default: "5000" } } });
const N = Number(values.requests);
if (!Bun.which("redis-server")) { console.error("bench-redis: redis-server not found (apt-get install redis-server)"); process.exit(1); }

const redis = await startRedis();
const engine = await makeEngine();
const stateDir = tmpDir("appliance-bench-redis-");
const store = new KeyStore(keysFilePath(stateDir));
const key = store.create({ name: "bench", rpm: 1e7, tpm: 1e9 }).key; // limits that never bite: every request runs the admit script
const build = async (rateLimit: Record<string, unknown>) => {
  const config = parseConfig({ stateDir, audit: false, rateLimit });
  const { app, guards } = await createServer(config, { engine, keys: store, log: silentLogger() });
  return { app, guards };
};
const memory = await build({ store: "memory" });
const shared = await build({ store: "redis", redisUrl: redis.url, redisUnavailable: "refuse" });
const request = () => new Request("http://localhost/v1/models", { headers: { authorization: `Bearer ${key}` } });

async function batch(app: Awaited<ReturnType<typeof build>>["app"], n: number, out: number[]) {
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await app.handle(request());
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`status ${r.status}`);
    out.push(performance.now() - t);
  }
}
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]!; };

const mem: number[] = [];
const red: number[] = [];
await batch(memory.app, 200, []); await batch(shared.app, 200, []); // warm-up
for (let done = 0; done < N; done += 250) { await batch(memory.app, 250, mem); await batch(shared.app, 250, red); }
const f = (x: number) => `${x.toFixed(3)} ms`;
console.log(`GET /v1/models through app.handle(), ${mem.length} requests each (${path.basename(import.meta.path)})`);
console.log(`  store memory : p50 ${f(pct(mem, 0.5))}  p99 ${f(pct(mem, 0.99))}`);
console.log(`  store redis  : p50 ${f(pct(red, 0.5))}  p99 ${f(pct(red, 0.99))}  (local redis-server, unix socket)`);
console.log(`  added by Redis: p50 ${f(pct(red, 0.5) - pct(mem, 0.5))}  p99 ${f(pct(red, 0.99) - pct(mem, 0.99))}`);
shared.guards.close();
await redis.kill();
await engine.dispose();
process.exit(0);
