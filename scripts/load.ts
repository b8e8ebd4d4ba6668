#!/usr/bin/env bun
/**
 * bun scripts/load.ts [--connections 1000] [--seconds 20] [--max-tokens 8] [--health-seconds 10] [--generators 4]
 *                     [--soak SECONDS] [--binary dist/appliance] [--parallel 2] [--max-queue 64] [--threads 0] [--json]
 *
 * Drives the real server (the compiled binary, on a generated tiny model, in a temp dir) and prints:
 *  1. burst (skipped with --seconds 0): `connections` concurrent clients over mixed routes (models, health, ready, metrics, chat with and
 *     without streaming, completions, embeddings) for `seconds`: req/s, p50/p99 per route, every answer
 *     classed 2xx / 429 / 503 / 4xx / 5xx / reset / timeout / stream_incomplete, server RSS before and after;
 *  2. health under generation: `generators` streaming chats keep every slot (and so the CPU) busy while one
 *     client asks GET /health every 20 ms: its p50/p99/max, and the server's own /health histogram over that time;
 *  3. with --soak S: `connections` clients for S seconds, RSS sampled every 5 s; growth is measured from the
 *     end of the first tenth (allocator warm-up) to the end.
 * Exit 1 when any answer was a 5xx, a reset, a timeout or an incomplete stream.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { drive, newTally, percentile, probeHealth, rssOf, scrape, serverSide, startServer, type Tally } from "./load-lib";

// Bun's fetch runs at most 256 requests at once unless told otherwise (BUN_CONFIG_MAX_HTTP_REQUESTS, read at start).
if (!process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) {
  const child = Bun.spawn([process.execPath, ...process.argv.slice(1)], { env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }, stdio: ["inherit", "inherit", "inherit"] });
  process.exit(await child.exited);
}

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  connections: { type: "string", default: "1000" }, seconds: { type: "string", default: "20" }, "max-tokens": { type: "string", default: "8" },
  "health-seconds": { type: "string", default: "10" }, generators: { type: "string", default: "4" }, soak: { type: "string" },
  binary: { type: "string", default: path.join(import.meta.dir, "..", "dist", "appliance") },
  parallel: { type: "string", default: "2" }, "max-queue": { type: "string", default: "64" }, threads: { type: "string", default: "0" }, json: { type: "boolean" },
} });
const n = (k: keyof typeof values) => Number(values[k]);
const MiB = (b: number) => (b / 1048576).toFixed(1);
const ms = (x: number) => (Number.isNaN(x) ? "-" : x < 10 ? x.toFixed(2) : x.toFixed(0));

const server = await startServer(String(values.binary),
  ["--parallel", String(values.parallel), "--max-queue", String(values["max-queue"]), "--threads", String(values.threads)]);
const keys = [server.key, server.key, server.key, server.key, server.key, server.key, server.key, server.key, server.key, server.limitedKey];
const report: Record<string, unknown> = { connections: n("connections"), maxTokens: n("max-tokens"), cores: navigator.hardwareConcurrency };
let bad = 0;

function summary(t: Tally, requests: number, seconds: number) {
  const all = Object.values(t.latency).flat();
  const routes = Object.fromEntries(Object.entries(t.byRoute).map(([k, v]) => {
    const ok = t.latency[k] ?? [];
    return [k, { answers: v, p50: percentile(ok, 50), p99: percentile(ok, 99) }];
  }));
  bad += t.outcomes["5xx"] + t.outcomes.reset + t.outcomes.timeout + t.outcomes.stream_incomplete;
  return { requests, seconds: +seconds.toFixed(1), rps: +(requests / seconds).toFixed(1), p50: percentile(all, 50), p99: percentile(all, 99), outcomes: t.outcomes, routes, samples: t.samples };
}

function print(title: string, s: ReturnType<typeof summary>) {
  console.log(`\n${title}: ${s.requests} requests in ${s.seconds} s = ${s.rps} req/s; 2xx latency p50 ${ms(s.p50)} ms, p99 ${ms(s.p99)} ms`);
  console.log("  answers: " + Object.entries(s.outcomes).map(([k, v]) => `${k} ${v}`).join(", "));
  for (const [k, v] of Object.entries(s.routes)) {
    console.log(`  ${k.padEnd(12)} 2xx p50 ${ms(v.p50).padStart(6)} ms  p99 ${ms(v.p99).padStart(6)} ms   ` + Object.entries(v.answers).map(([o, c]) => `${o} ${c}`).join(", "));
  }
  for (const x of s.samples) console.log(`  sample: ${x}`);
}

try {
  // Warm-up: a few of each so the first timings are not the engine's first-use costs.
  await drive({ url: server.url, keys: [server.key], connections: 4, seconds: 2, maxTokens: n("max-tokens") });
  // --seconds 0: no burst (only the /health-under-generation part, and the soak if asked).
  if (n("seconds") > 0) {
    const rssBefore = rssOf(server.pid);
    const metricsBefore = await scrape(server.url, server.key);
    const burst = await drive({ url: server.url, keys, connections: n("connections"), seconds: n("seconds"), maxTokens: n("max-tokens") });
    const rssAfter = rssOf(server.pid);
    const metricsAfter = await scrape(server.url, server.key);
    const b = summary(burst.tally, burst.requests, burst.seconds);
    const health = serverSide(metricsBefore, metricsAfter, "/health");
    report.burst = { ...b, rssBefore, rssAfter, serverHealth: health };
    if (!values.json) {
      print(`burst (${n("connections")} connections, max_tokens ${n("max-tokens")})`, b);
      console.log(`  server-side /health (its own histogram, without the clients' delays): mean ${ms(health.meanMs)} ms, p99 <= ${ms(health.p99BoundMs)} ms`);
      console.log(`  server RSS ${MiB(rssBefore)} MiB before, ${MiB(rssAfter)} MiB after`);
    }
  }

  // /health while generation keeps the CPU busy.
  const healthBefore = await scrape(server.url, server.key);
  const gen = drive({ url: server.url, keys: [server.key], connections: n("generators"), seconds: n("health-seconds"), maxTokens: 256 }, newTally());
  const probes = await probeHealth(server.url, gen);
  const g = await gen;
  // The server's own view of those probes (arrival to last byte inside the server, without the client's delays).
  const own = serverSide(healthBefore, await scrape(server.url, server.key), "/health");
  const load = await Bun.file("/proc/loadavg").text().catch(() => "");
  report.health = { probes: probes.length, p50: percentile(probes, 50), p99: percentile(probes, 99), max: Math.max(...probes), generations: g.requests, loadavg: load.trim(), server: own };
  bad += g.tally.outcomes["5xx"] + g.tally.outcomes.reset + g.tally.outcomes.timeout + g.tally.outcomes.stream_incomplete;
  if (!values.json) {
    console.log(`\n/health under generation (${n("generators")} streaming chats, max_tokens 256, ${n("health-seconds")} s): ` +
      `${probes.length} probes, p50 ${ms(percentile(probes, 50))} ms, p99 ${ms(percentile(probes, 99))} ms, max ${ms(Math.max(...probes))} ms; ` +
      `${g.requests} generations (${Object.entries(g.tally.outcomes).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(", ")}); loadavg ${load.split(" ").slice(0, 3).join(" ")}`);
    console.log(`  server-side /health (its own histogram): ${own.n} answers, mean ${ms(own.meanMs)} ms, p99 <= ${ms(own.p99BoundMs)} ms`);
  }

  if (values.soak) {
    const seconds = Number(values.soak);
    const samples: { t: number; rss: number }[] = [{ t: 0, rss: rssOf(server.pid) }];
    const t0 = performance.now();
    const soak = drive({ url: server.url, keys, connections: n("connections"), seconds, maxTokens: n("max-tokens") });
    const sampler = setInterval(() => samples.push({ t: (performance.now() - t0) / 1000, rss: rssOf(server.pid) }), 5_000);
    const s = await soak;
    clearInterval(sampler);
    samples.push({ t: (performance.now() - t0) / 1000, rss: rssOf(server.pid) });
    const base = samples.find((x) => x.t >= seconds / 10) ?? samples[0]!;
    const last = samples[samples.length - 1]!;
    const growth = ((last.rss - base.rss) / base.rss) * 100;
    const sm = summary(s.tally, s.requests, s.seconds);
    report.soak = { ...sm, seconds, rssStart: samples[0]!.rss, rssBase: base.rss, rssEnd: last.rss, rssMax: Math.max(...samples.map((x) => x.rss)), growthPercent: +growth.toFixed(2) };
    if (!values.json) {
      print(`soak (${n("connections")} connections, ${seconds} s)`, sm);
      console.log(`  server RSS: ${MiB(samples[0]!.rss)} MiB at start, ${MiB(base.rss)} MiB after warm-up (${base.t.toFixed(0)} s), ` +
        `${MiB(last.rss)} MiB at the end, max ${MiB(Math.max(...samples.map((x) => x.rss)))} MiB: growth ${growth.toFixed(2)}% after warm-up`);
    }
  }
} finally {
  report.exit = await server.stop();
}
if (values.json) console.log(JSON.stringify(report));
else console.log(`\nserver exit ${report.exit}; ${bad ? `${bad} answers were 5xx/reset/timeout/incomplete` : "no 5xx, reset, timeout or incomplete stream"}`);
process.exit(bad || report.exit !== 0 ? 1 : 0);
