#!/usr/bin/env bun
/**
 * bun scripts/bench-engine.ts [--sizes 28,155] [--runs 2] [--tokens 96] [--portable]
 *
 * The engine alone, three ways, on the same generated F32 GGUF (28 M / 155 M params, as bench-peer):
 *   prebuilt  node-llama-cpp's npm libraries (no OpenMP), driven directly (no HTTP)
 *   local     our OpenMP build from the bundled source (scripts/engine-build.ts; built if not cached), driven the same way
 *             with the OpenMP settings the binary applies (src/engine/engine-build-env.ts)
 *   peer      llama-bench built from the same source (scripts/peer-build.ts)
 * Rows: prefill of 512 tokens (pp512) at 1 and 2 threads, greedy decode at 1 and 2 threads, and decode with twice
 * as many threads as usable CPUs (where the prebuilt engine's spinning barrier collapses). Each measure alternates
 * prebuilt and local runs (`--runs` each, one child process per run, best of the in-process repetitions after a
 * warm-up, median over runs); the 1-minute load average is printed at the start and end of every row.
 * node-llama-cpp prefers a local build found in its own package folder, so the local engine is loaded from a
 * throw-away copy of the package holding the cached build (the repo's node_modules are never touched).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { usableCpus } from "../src/engine/cpu-budget";
import { applyOmpEnv } from "../src/engine/engine-build-env";
import { makeTinyModel } from "../src/engine/tiny-model";
import { engineBuild } from "./engine-build";
import { peerBuild } from "./peer-build";
import { SHAPES } from "./bench-peer-lib";

const repo = path.resolve(import.meta.dir, "..");

/** Child mode: `--child MODULE MODEL THREADS prefill|decode N [omp]` prints one JSON line {tps, tasks}. */
async function child([mod, model, threadsS, mode, nS, omp]: string[]) {
  // The OpenMP settings the compiled binary applies for a local engine (src/engine/engine-build-env.ts).
  if (omp === "omp") applyOmpEnv();
  const { getLlama } = await import(mod!);
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
  const m = await llama.loadModel({ modelPath: model });
  const ctx = await m.createContext({ contextSize: 2048, threads: Number(threadsS), batchSize: 512, sequences: 1 });
  const seq = ctx.getSequence();
  const n = Number(nS);
  const rates: number[] = [];
  for (let r = 0; r < 3; r++) {
    await seq.clearHistory();
    if (mode === "prefill") {
      const tokens = Array.from({ length: n }, (_, i) => ((i * 7919) % 200) + 10); // within the tiny vocabulary
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(tokens);
      rates.push(n / ((performance.now() - t0) / 1000));
    } else {
      let k = 0, t0 = 0;
      for await (const _ of seq.evaluate([11, 12, 13], { temperature: 0 })) { if (k === 0) t0 = performance.now(); if (++k > n) break; }
      rates.push(n / ((performance.now() - t0) / 1000));
    }
  }
  // CPU time the process burns in the 1 s after the last step (spinning OpenMP workers show up here).
  const cpuMs = () => { const f = fs.readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" "); return (Number(f[11]) + Number(f[12])) * 10; };
  const c0 = cpuMs();
  await Bun.sleep(1000);
  const idleCpuMs = cpuMs() - c0;
  console.log(JSON.stringify({ build: llama.buildType, tps: Math.max(...rates.slice(1)), tasks: fs.readdirSync("/proc/self/task").length, idleCpuMs }));
  process.exit(0);
}

/** A copy of node-llama-cpp whose local build is the cached engine; returns its module entry. */
function stageLocal(dir: string, bins: string, folder: string): string {
  const nm = path.join(dir, "node_modules");
  fs.mkdirSync(nm, { recursive: true });
  for (const e of fs.readdirSync(path.join(repo, "node_modules"))) if (e !== "node-llama-cpp") fs.symlinkSync(path.join(repo, "node_modules", e), path.join(nm, e));
  const src = path.join(repo, "node_modules/node-llama-cpp"), pkg = path.join(nm, "node-llama-cpp");
  const skip = new Set(["llama/localBuilds", "llama/llama.cpp", "llama/lastBuild.json", "llama/gitRelease.bundle"].map((p) => path.join(src, p)));
  fs.cpSync(src, pkg, { recursive: true, filter: (s) => !skip.has(s) });
  fs.cpSync(path.join(bins, folder), path.join(pkg, "llama/localBuilds", folder, "Release"), { recursive: true });
  fs.writeFileSync(path.join(pkg, "llama/localBuilds", folder, "buildDone.status"), ""); // node-llama-cpp's "build finished" mark
  fs.writeFileSync(path.join(pkg, "llama/lastBuild.json"), JSON.stringify({ folderName: folder }));
  return path.join(pkg, "dist/index.js");
}

if (Bun.argv[2] === "--child") await child(Bun.argv.slice(3));

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  sizes: { type: "string", default: "28,155" }, runs: { type: "string", default: "2" }, tokens: { type: "string", default: "96" },
  portable: { type: "boolean" },
} });
const runs = Number(values.runs), tokens = Number(values.tokens);
const cpus = usableCpus().cpus;
const engine = await engineBuild({ portable: values.portable });
if ("skip" in engine) { console.error(`bench-engine: no local engine: ${engine.skip}`); process.exit(1); }
const peer = await peerBuild();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-engine-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
const mods = { prebuilt: path.join(repo, "node_modules/node-llama-cpp/dist/index.js"), local: stageLocal(path.join(dir, "stage"), engine.binsDir, engine.folder) };
const load1 = () => os.loadavg()[0]!.toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`local engine ${engine.key.slice(0, 16)} (${Object.entries(engine.cmakeOptions).map(([k, v]) => `${k}=${v}`).join(" ")}; ${engine.compiler})`);
console.log(`peer: ${"skip" in peer ? `none (${peer.skip})` : peer.llamaBench}; ${cpus} usable CPUs; runs ${runs} per side; bun ${Bun.version}`);

function runChild(mod: string, model: string, threads: number, mode: string, n: number, build: "prebuilt" | "localBuild"): { tps: number; tasks: number } {
  const r = Bun.spawnSync([process.execPath, import.meta.path, "--child", mod, model, String(threads), mode, String(n), build === "localBuild" ? "omp" : ""], { stderr: "pipe" });
  const line = r.stdout.toString().trim().split("\n").pop() ?? "";
  if (r.exitCode !== 0 || !line.startsWith("{")) throw new Error(`child ${mode} ${threads}t failed: ${r.stderr.toString().slice(-500)}`);
  const out = JSON.parse(line) as { build: string; tps: number; tasks: number };
  if (out.build !== build) throw new Error(`expected node-llama-cpp's ${build} libraries, it loaded its ${out.build} ones`);
  return out;
}

/** llama-bench's t/s for one test (pp512 or tgN) at `threads`. */
function peerRate(model: string, threads: number, test: "pp" | "tg", n: number): number | null {
  if ("skip" in peer) return null;
  const args = test === "pp" ? ["-p", String(n), "-n", "0"] : ["-p", "0", "-n", String(n)];
  const r = Bun.spawnSync([peer.llamaBench, "-m", model, "-t", String(threads), "-r", String(Math.max(2, runs)), "-o", "json", ...args], { stderr: "ignore" });
  try { return (JSON.parse(r.stdout.toString()) as { avg_ts: number }[])[0]!.avg_ts; } catch { return null; }
}

console.log("\n| model | measure | prebuilt | local (OpenMP) | peer llama-bench | local / prebuilt | local / peer | threads seen (prebuilt / local) | load |\n|---|---|---|---|---|---|---|---|---|");
for (const size of values.sizes.split(",")) {
  const shape = SHAPES[size];
  if (!shape) throw new Error(`--sizes: ${size} is not one of ${Object.keys(SHAPES).join(", ")}`);
  const model = path.join(dir, `m${size}.gguf`);
  await makeTinyModel(model, { ...shape, ctx: 2048 });
  const rows: [string, "prefill" | "decode", number, number][] = [
    ["prefill pp512, 1 thread", "prefill", 1, 512], ["prefill pp512, 2 threads", "prefill", 2, 512],
    [`decode ${tokens} tokens, 1 thread`, "decode", 1, tokens], [`decode ${tokens} tokens, 2 threads`, "decode", 2, tokens],
    [`decode, ${cpus * 2} threads on ${cpus} CPUs`, "decode", cpus * 2, 16],
  ];
  for (const [label, mode, threads, n] of rows) {
    const l0 = load1();
    const A: number[] = [], B: number[] = [];
    let tasks = ["", ""];
    for (let i = 0; i < runs; i++) {
      const a = runChild(mods.prebuilt, model, threads, mode, n, "prebuilt"), b = runChild(mods.local, model, threads, mode, n, "localBuild");
      A.push(a.tps); B.push(b.tps); tasks = [String(a.tasks), String(b.tasks)];
    }
    const p = peerRate(model, threads, mode === "prefill" ? "pp" : "tg", n);
    const [a, b] = [median(A), median(B)];
    console.log(`| ${size} M | ${label} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${p?.toFixed(1) ?? "—"} | ${(b / a).toFixed(2)} | ${p ? (b / p).toFixed(2) : "—"} | ${tasks.join(" / ")} | ${l0}→${load1()} |`);
  }
}
console.log("\ntok/s; prebuilt and local drive node-llama-cpp directly (decode includes its sampling round trip, llama-bench tg does not)");
