#!/usr/bin/env bun
/**
 * bun scripts/bench-engine-built.ts --engine-dir DIR [--size 28|155] [--runs 3] [--tokens 48] [--threads N] [--bin PATH] [--env K=V,…]
 *                                    [--engine-dir-b DIR] [--env-b K=V,…] [--bin-b PATH] [--no-embedded] [--warm N]
 *
 * The engine `appliance engine build` made on this machine against the embedded (npm prebuilt) libraries and the
 * peer llama-server (scripts/peer-build.ts: the same llama.cpp source, cmake, GGML_NATIVE, OpenMP), all over HTTP:
 * dist/appliance twice (APPLIANCE_ENGINE__USE=embedded, and =built with APPLIANCE_ENGINE__DIR=DIR) and llama-server,
 * on one generated F32 GGUF. Each measure runs the three in rotating order (ABC, BCA, CAB …) and prints its medians,
 * the ratios built/llama-server and embedded/llama-server, and the 1-minute load average at its start and end.
 * Rows: decode 1 thread and N threads (usable CPUs), a 408-word prompt (~650 tokens) with max_tokens 1 (prefill, as prompt
 * tokens/s), 2 and 4 concurrent streams aggregate (--parallel n vs -np n), and where each server's CPU time goes while
 * it decodes with 1 and with N threads (per generated token, from /proc: the main thread's CPU ms, the other threads' CPU ms, and
 * their voluntary context switches: a decode thread that sleeps at a barrier and is woken again counts one).
 * --engine-dir-b adds a second built engine ("built-b", with --env-b on top of --env, run by --bin-b if given) to the
 * same rotation, so two builds, binaries or settings are compared measurement by measurement at the same load;
 * --no-embedded leaves the embedded server out (a shorter run). --warm N: requests (or bursts) of a row's shape each
 * server answers, unmeasured, before the row's runs (default 1). A fresh appliance's JavaScript runs for its first
 * requests before Bun's JIT has optimised it: its main thread's CPU per generated token fell from 0.78 to ~0.45 ms over
 * its first 50 requests of 96 tokens (28 M, 1 thread, AVX2-only host, 2026-12-07), so --warm 50 measures a server
 * that has been answering for a while, the default one just started. Needs `bun run build` first.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { usableCpus } from "../src/engine/cpu-budget";
import { makeTinyModel } from "../src/engine/tiny-model";
import { complete, load1, median, startAppliance, startPeer, threadDelta, threadStats, wordsPrompt, type Served, cpuLine, envOf, SHAPES } from "./bench-peer-lib";
import { peerBuild } from "./peer-build";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  "engine-dir": { type: "string" }, size: { type: "string", default: "28" }, runs: { type: "string", default: "3" },
  tokens: { type: "string", default: "48" }, threads: { type: "string" }, bin: { type: "string" },
  env: { type: "string", default: "" }, "engine-dir-b": { type: "string" }, "env-b": { type: "string", default: "" },
  "no-embedded": { type: "boolean" }, "bin-b": { type: "string" }, warm: { type: "string", default: "1" },
} });
// --env: extra environment for both appliance servers (e.g. OMP_PROC_BIND=close,OMP_PLACES=cores to try OpenMP settings).
const extraEnv = envOf(values.env), envB = envOf(values["env-b"]);
if (!values["engine-dir"]) { console.error("--engine-dir DIR: where `appliance engine build` installed the engine (engine.dir)"); process.exit(2); }
const engineDir = path.resolve(values["engine-dir"]);
const engineDirB = values["engine-dir-b"] ? path.resolve(values["engine-dir-b"]) : null;
const warmRuns = Number(values.warm), runs = Number(values.runs), maxTokens = Number(values.tokens), threads = Number(values.threads ?? usableCpus().cpus);
// --bin: another compiled binary (e.g. one built from a clean checkout with `bun scripts/build.ts --out`).
const bin = path.resolve(values.bin ?? path.join(import.meta.dir, "../dist/appliance"));
if (!fs.existsSync(bin)) { console.error(`${bin} is missing: run \`bun run build\` first`); process.exit(1); }
const binB = values["bin-b"] ? path.resolve(values["bin-b"]) : bin;
const peer = await peerBuild();
if ("skip" in peer) { console.error(`no llama-server to compare with: ${peer.skip}`); process.exit(1); }
const llamaServer = peer.llamaServer;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-engine-built-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
const model = path.join(dir, "bench.gguf");
const { params } = await makeTinyModel(model, { ...SHAPES[values.size]!, ctx: 2048 });
const f = (x: number, d = 1) => x.toFixed(d);
console.log(cpuLine());
console.log(`model ${f(params / 1e6)} M params F32; threads ${threads}; ${runs} runs per server after ${warmRuns} unmeasured; max_tokens ${maxTokens}; built engine in ${engineDir}; binary ${bin}${values.env ? `; env ${values.env}` : ""}` +
  (engineDirB ? `; built-b engine in ${engineDirB}${values["env-b"] ? ` with ${values["env-b"]}` : ""}${binB !== bin ? `, binary ${binB}` : ""}` : ""));

/** The servers of one rotation; llama-server is always last (the ratios' reference). */
const names = ["built", ...(engineDirB ? ["built-b"] : []), ...(values["no-embedded"] ? [] : ["embedded"]), "llama-server"];
async function start(t: number, np: number): Promise<Served[]> {
  const one = async (name: string, env: Record<string, string>, exe = bin) => {
    // Each server its own state dir (keys, audit log), made fresh for each start.
    const own = path.join(dir, name);
    fs.rmSync(own, { recursive: true, force: true });
    fs.mkdirSync(own);
    const s = await startAppliance(exe, model, own, t, np, { name, env: { ...extraEnv, ...env }, logFile: path.join(dir, `${name}-${t}-${np}.log`) });
    const line = fs.readFileSync(path.join(dir, `${name}-${t}-${np}.log`), "utf8").split("\n").find((l) => l.includes('"msg":"engine"'));
    const engine = line ? (JSON.parse(line) as { engine: string }).engine : "?";
    if (engine !== (name === "embedded" ? "embedded" : "built")) throw new Error(`${name}: the server runs the ${engine} engine`);
    return s;
  };
  const out: Served[] = [await one("built", { APPLIANCE_ENGINE__DIR: engineDir, APPLIANCE_ENGINE__USE: "built" })];
  if (engineDirB) out.push(await one("built-b", { APPLIANCE_ENGINE__DIR: engineDirB, APPLIANCE_ENGINE__USE: "built", ...envB }, binB));
  if (!values["no-embedded"]) out.push(await one("embedded", { APPLIANCE_ENGINE__USE: "embedded" }));
  return [...out, await startPeer(llamaServer, model, t, np)];
}
const stopAll = (s: Served[]) => Promise.all(s.map((x) => x.stop()));

const table: string[] = [];
/** Runs `measure` n times on each server in rotating order; medians, ratios to llama-server, load. */
async function row(label: string, servers: Served[], measure: (s: Served) => Promise<number>, unit: string) {
  for (let w = 0; w < warmRuns; w++) for (const s of servers) await measure(s); // warm-up (--warm)
  const n = servers.length, xs: number[][] = servers.map(() => []);
  const l0 = load1();
  for (let i = 0; i < runs; i++) for (let k = 0; k < n; k++) { const j = (i + k) % n; xs[j]!.push(await measure(servers[j]!)); }
  const m = xs.map(median), p = m[n - 1]!, mine = m.slice(0, -1);
  const line = `| ${label} | ${m.map((x) => f(x)).join(" | ")} | ${mine.map((x, i) => (i === 0 ? `**${f(x / p, 2)}**` : f(x / p, 2))).join(" | ")} | ${f(l0)}→${f(load1())} |`;
  console.log(`${label}: ${m.map((x, i) => `${names[i]} ${f(x)}`).join(", ")} ${unit}; ${mine.map((x, i) => `${names[i]}/peer ${f(x / p, 2)}`).join(", ")}`);
  table.push(line);
}

/** Per generated token while each server decodes `runs` single streams: where its threads' CPU time goes. */
async function threadRow(t: number, servers: Served[]) {
  const cells: string[] = [];
  const l0 = load1();
  for (const s of servers) {
    const before = threadStats(s.proc.pid);
    let tokens = 0;
    for (let i = 0; i < runs; i++) tokens += (await complete(s, short(), maxTokens)).completionTokens;
    const d = threadDelta(s.proc.pid, before, threadStats(s.proc.pid), tokens);
    cells.push(`main ${f(d.mainMs, 2)} · others ${f(d.otherMs, 2)} ms (${d.busy} busy) · ${f(d.sleeps, 1)} sleeps`);
    console.log(`decode, ${t} threads, per token [${s.name}]: main thread ${f(d.mainMs, 2)} ms CPU, other threads ${f(d.otherMs, 2)} ms (${d.busy} ran >= 10 ms), ${f(d.sleeps, 1)} voluntary context switches`);
  }
  table.push(`| decode, ${t} threads, per token: CPU ms of the main thread · of the others · their voluntary context switches | ${cells.join(" | ")} | ${cells.slice(1).map(() => "—").join(" | ")} | ${f(l0)}→${f(load1())} |`);
}
const short = () => wordsPrompt(10);
const tps = (s: Served) => complete(s, short(), maxTokens).then((c) => c.completionTokens / (c.ms / 1000));
for (const t of [...new Set([1, threads])]) {
  const s = await start(t, 1);
  await row(`HTTP decode, ${t} thread${t > 1 ? "s" : ""} (tok/s)`, s, tps, "tok/s");
  await threadRow(t, s);
  if (t === threads) await row(`408-word prompt, max_tokens 1, ${t} threads (prompt tok/s)`, s, (x) => complete(x, wordsPrompt(408), 1).then((c) => c.promptTokens / (c.ms / 1000)), "tok/s");
  await stopAll(s);
}
for (const n of [2, 4]) {
  const s = await start(threads, n);
  await row(`${n} concurrent streams, aggregate, ${threads} threads (tok/s)`, s, async (x) => {
    const t0 = performance.now();
    const all = await Promise.all(Array.from({ length: n }, () => complete(x, short(), maxTokens, true)));
    return all.reduce((a, c) => a + c.completionTokens, 0) / ((performance.now() - t0) / 1000);
  }, "tok/s");
  await stopAll(s);
}
const mine = names.slice(0, -1);
console.log(`\n| measure (${values.size} M) | ${names.join(" | ")} | ${mine.map((x) => `${x} / peer`).join(" | ")} | load |\n|${"---|".repeat(2 * names.length + 1)}`);
for (const l of table) console.log(l);
