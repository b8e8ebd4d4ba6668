#!/usr/bin/env bun
/**
 * bun scripts/bench-gpu.ts --llama-bench PATH [--bin dist/appliance] [--engine-dir DIR] [--gpu cuda|vulkan|off]
 *                          [--size 1000] [--tokens 128] [--runs 5] [--dir DIR]
 *
 * Issue 11 item 8, on a GPU machine: single-stream decode of the appliance as users run it (auth, guards, scanner on;
 * HTTP, streamed; on the engine `appliance engine build --gpu cuda` installed in --engine-dir) against llama-bench's
 * tg on the same generated model with every layer on the GPU (-ngl 99), interleaved, with the backend each side ran
 * on (a side not on the GPU asked for stops the run, exit 1, before any figure). The appliance's rate is its tokens
 * after the first over the time from the first to the last (its prefill and the HTTP set-up left out, as
 * llama-bench's tg leaves out the prompt).
 *
 * On a machine with no Bun and no node_modules (the device machine) the compiled binary runs this script itself:
 * `BUN_BE_BUN=1 ./appliance scripts/bench-gpu.ts …` (it imports only the repo's own sources). On this CPU-only
 * development machine `--gpu off` with the CPU llama-bench checks the script's mechanics; its figures mean nothing
 * for item 8.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { makeTinyModel } from "../src/engine/tiny-model";
import { alternate, complete, load1, median, startAppliance, wordsPrompt } from "./bench-peer-lib";

/** Model shapes by millions of parameters: "1000" is the issue's ~1 B (F32, ~3.5 GB). */
const SHAPES: Record<string, { layers: number; embd: number; ff: number; heads: number }> = {
  "28": { layers: 4, embd: 768, ff: 2048, heads: 12 },
  "1000": { layers: 16, embd: 2048, ff: 5632, heads: 16 },
};

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  // Run by the compiled binary itself (BUN_BE_BUN=1), that binary is the one measured unless --bin names another.
  bin: { type: "string", default: process.env.BUN_BE_BUN ? process.execPath : path.resolve(import.meta.dir, "../dist/appliance") },
  "llama-bench": { type: "string" },
  "engine-dir": { type: "string" }, gpu: { type: "string", default: "cuda" }, size: { type: "string", default: "1000" },
  tokens: { type: "string", default: "128" }, runs: { type: "string", default: "5" }, dir: { type: "string" },
} });
const shape = SHAPES[values.size];
if (!values["llama-bench"] || !shape || !["cuda", "vulkan", "off"].includes(values.gpu)) {
  console.error(`usage: bench-gpu.ts --llama-bench PATH [--engine-dir DIR] [--gpu cuda|vulkan|off] [--size ${Object.keys(SHAPES).join("|")}] [--tokens N] [--runs N]`);
  process.exit(2);
}
const tokens = Number(values.tokens), runs = Number(values.runs), gpu = values.gpu;
const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-gpu-"));
// A run stopped by a signal exits through bench-peer-lib's handlers, past the finally below: the ~3.5 GB model goes too.
if (!values.dir) process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));

// Named bench.gguf: its model id is what bench-peer-lib's requests ask for ("bench").
const model = path.join(dir, `model-${values.size}`, "bench.gguf");

/** The appliance's decode rate on one streamed completion: tokens after the first over first → last byte. */
async function applianceRate(): Promise<number> {
  const c = await complete(a!, wordsPrompt(10), tokens, true);
  if (c.completionTokens < 2) throw new Error(`the appliance answered ${c.completionTokens} tokens: ${c.text.slice(0, 300)}`);
  return (c.completionTokens - 1) / ((c.ms - c.ttftMs) / 1000);
}

/** llama-bench's tg: `tokens` generated with no prompt, every layer on the GPU, one repetition; and its backends. */
function benchRun(): { rate: number; backends: string; gpuInfo: string } {
  const r = Bun.spawnSync([values["llama-bench"]!, "-m", model, "-p", "0", "-n", String(tokens), "-r", "1", "-ngl", gpu === "off" ? "0" : "99", "-o", "json"],
    { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`llama-bench exited ${r.exitCode}: ${r.stderr.toString().slice(-500)}`);
  const row = (JSON.parse(r.stdout.toString()) as { avg_ts: number; backends: string; gpu_info: string }[])[0]!;
  return { rate: row.avg_ts, backends: row.backends, gpuInfo: row.gpu_info };
}

/** Stops the run (exit 1) when a side is not on the GPU asked for: its figure would be a CPU one, minutes later. */
function onGpuOrStop(side: string, backend: string | undefined) {
  if (gpu === "off" || backend?.toLowerCase().includes(gpu)) return;
  console.log(`!!! ${side} ran on ${backend || "an unknown backend"}, not ${gpu}: no GPU figure from this run`);
  process.exit(1);
}

let a: Awaited<ReturnType<typeof startAppliance>> | undefined;
try {
  if (!fs.existsSync(model)) {
    fs.mkdirSync(path.dirname(model), { recursive: true });
    const t0 = performance.now();
    const { params, bytes } = await makeTinyModel(model, { ...shape, ctx: 2048 });
    console.log(`model: ${(params / 1e6).toFixed(0)} M params, ${(bytes / 1e9).toFixed(2)} GB, made in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  // LD_LIBRARY_PATH passes through: where the CUDA runtime and cuBLAS are outside the loader's cache (the device
  // machine's come as pip wheels), serve and its GPU preflight child find them as llama-bench does.
  const env: Record<string, string> = { APPLIANCE_GPU: gpu, ...(values["engine-dir"] && { APPLIANCE_ENGINE__DIR: values["engine-dir"] }),
    ...(process.env.LD_LIBRARY_PATH && { LD_LIBRARY_PATH: process.env.LD_LIBRARY_PATH }) };
  const logFile = path.join(dir, "serve.log");
  a = await startAppliance(values.bin, model, dir, 0, 1, { env, logFile });
  const logLine = (msg: string) => fs.readFileSync(logFile, "utf8").split("\n").find((l) => l.includes(`"msg":"${msg}"`));
  const loaded = JSON.parse(logLine("model loaded") ?? "{}") as { backend?: string };
  const fallback = logLine("GPU preflight failed: falling back to CPU");
  console.log(`appliance: backend ${loaded.backend ?? "?"}${fallback ? `; ${JSON.parse(fallback).reason}` : ""}; /health after ${a.startMs.toFixed(0)} ms`);
  onGpuOrStop("the appliance", loaded.backend);
  const probe = benchRun();
  console.log(`llama-bench: backends ${probe.backends}${probe.gpuInfo ? `, ${probe.gpuInfo}` : ""}`);
  onGpuOrStop("llama-bench", probe.backends);
  await applianceRate(); // its first request after the start: warm-up, as llama-bench's first run was
  const l0 = load1();
  const { a: A, b: B } = await alternate(runs, async (side) => (side === "a" ? applianceRate() : benchRun().rate));
  const [ra, rb] = [median(A), median(B)];
  console.log(`decode, ${tokens} tokens, 1 stream (tok/s, median of ${runs} interleaved): appliance ${ra.toFixed(1)}, llama-bench tg${tokens} ${rb.toFixed(1)}, ratio ${(ra / rb).toFixed(2)} (goal ≥ 0.95), load ${l0.toFixed(1)}→${load1().toFixed(1)}`);
  console.log(`  appliance runs: ${A.map((x) => x.toFixed(1)).join(", ")}; llama-bench runs: ${B.map((x) => x.toFixed(1)).join(", ")}`);
} finally {
  await a?.stop(); // the dir goes with the exit handler above
}
