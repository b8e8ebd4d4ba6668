#!/usr/bin/env bun
/**
 * bun scripts/bench-guards.ts [--requests N] [--mb N]
 *
 * 1. The whole guard pipeline's added latency per request (p50/p99): the same
 *    GET /v1/models through app.handle() with every guard on (host, body,
 *    auth, rate limit, audit) vs with auth, limits and audit off.
 * 2. The response scanner's throughput in MB/s, one-shot and streaming (16-char chunks).
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load";
import { createGuards } from "../src/guards";
import { KeyStore, keysFilePath } from "../src/guards/keys";
import { createScanner } from "../src/guards/response-scan";
import { AuditLog } from "../src/log/audit";
import { silentLogger } from "../src/log/logger";
import { createApp } from "../src/server/app";
import { versionInfo } from "../src/version";
import { makeEngine, tmpDir } from "../tests/helpers";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { requests: { type: "string", default: "20000" }, mb: { type: "string", default: "16" } } });
const N = Number(values.requests);
const engine = await makeEngine();

async function timings(guarded: boolean): Promise<number[]> {
  const stateDir = tmpDir();
  const config = parseConfig({ stateDir, auth: guarded, audit: guarded, rateLimit: guarded ? { rpm: 10_000_000 } : { rpm: 0, tpm: 0, anonymousRpm: 0 } });
  const keys = new KeyStore(keysFilePath(stateDir));
  const { key } = keys.create({ name: "bench", rpm: 10_000_000 });
  const log = silentLogger();
  const guards = createGuards({ config, engine, keys: guarded ? keys : undefined, audit: guarded ? new AuditLog(path.join(stateDir, "audit.jsonl")) : undefined, log, clock: Date.now });
  const app = createApp({ config, engine, log, guards, version: versionInfo() });
  const headers = { authorization: `Bearer ${key}` };
  const out: number[] = [];
  for (let i = 0; i < N + 1000; i++) {
    const t0 = performance.now();
    const r = await app.handle(new Request("http://localhost/v1/models", { headers }));
    await r.arrayBuffer();
    if (i >= 1000) out.push(performance.now() - t0); // first 1000 warm the JIT
  }
  return out.sort((a, b) => a - b);
}
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const bare = await timings(false);
const full = await timings(true);
console.log(`guard pipeline, GET /v1/models via app.handle, ${N} requests:`);
console.log(`  without guards: p50 ${(pct(bare, 50) * 1000).toFixed(0)} µs, p99 ${(pct(bare, 99) * 1000).toFixed(0)} µs`);
console.log(`  with guards:    p50 ${(pct(full, 50) * 1000).toFixed(0)} µs, p99 ${(pct(full, 99) * 1000).toFixed(0)} µs`);
console.log(`  added:          p50 ${((pct(full, 50) - pct(bare, 50)) * 1000).toFixed(0)} µs, p99 ${((pct(full, 99) - pct(bare, 99)) * 1000).toFixed(0)} µs  (goal p50 < 1000 µs)`);

// Prompt guard on a realistic chat, through the same code the routes use.
const check = (await import("../src/guards/prompt-guard")).createPromptGuard(parseConfig({}));
const turns = [{ role: "system" as const, content: "You are helpful." }, { role: "user" as const, content: "Explain SQL joins with an example. ".repeat(40) }];
const specials = engine.specialTokens("tiny");
let t0 = performance.now();
for (let i = 0; i < 10_000; i++) check(turns, specials);
console.log(`prompt guard: ${(((performance.now() - t0) / 10_000) * 1000).toFixed(1)} µs per 1.4 KB chat`);

// Scanner throughput on text shaped like model output, with a secret every ~4 KB.
const scanner = createScanner(parseConfig({}).responseScan);
const para = "The quick brown fox jumps over the lazy dog while the server streams tokens to its clients. ";
let text = "";
while (text.length < Number(values.mb) * 1e6) text += para.repeat(40) + " AKIAIOSFODNN7EXAMPLE ";
t0 = performance.now();
const r = scanner.scan(text);
const oneShot = text.length / 1e6 / ((performance.now() - t0) / 1000);
const f = scanner.filter();
t0 = performance.now();
let emitted = 0;
for (let i = 0; i < text.length; i += 16) emitted += f.push(text.slice(i, i + 16)).length;
emitted += f.end().length;
const streaming = text.length / 1e6 / ((performance.now() - t0) / 1000);
console.log(`response scanner: one-shot ${oneShot.toFixed(0)} MB/s, streaming (16-char chunks) ${streaming.toFixed(0)} MB/s, ${r.findings.length} rule(s) hit (goal >= 100 MB/s)`);
await engine.dispose();
