#!/usr/bin/env bun
/**
 * bun scripts/bench-prefill.ts [--engine-dir DIR] [--sizes 28,155] [--threads 1,2] [--runs 3]
 *
 * Prompt processing (prefill) of the appliance's engines against the native build, on the generated F32 GGUFs
 * bench-peer uses (28 M and 155 M params). Per model size and thread count it prints tokens/s for:
 *   embedded     node-llama-cpp's npm prebuilt libraries (what the binary embeds), in-process through LlamaEngine:
 *                a 512-token prompt (BOS + 511 token ids), max_tokens 1, timed from complete() to its result; a
 *                warm-up prompt, then 3 timed ones in the same process, their median; prompt tokens ÷ seconds. (bench-peer-inproc.ts's enginePrefill
 *                is the same pattern with the same exact prompt.)
 *   built        the same measure on the engine `appliance engine build` installed in DIR (engine.dir), loaded the
 *                way serve loads it: selectEngine (every file's sha256 and owner checked, the OpenMP settings put in
 *                the C environment), then node-llama-cpp's getBinsDir() answers the verified dir, as in the compiled
 *                binary (scripts/build.ts). The child checks in /proc/self/maps that llama-addon.node came from DIR.
 *   llama-bench  pp512 of llama-bench built with cmake from the same llama.cpp source (scripts/peer-build.ts:
 *                GGML_NATIVE, OpenMP; its defaults n_batch 2048, n_ubatch 512, -fa auto), -r 3 after its own warm-up
 *                run (the mean of the 3).
 *   built-fa-on, built-fa-off  (--flash-attention, a diagnostic) the built engine, node-llama-cpp driven directly
 *                (no LlamaEngine), flash attention forced on / off in the context, the same 512-token prompt;
 *   llama-bench-fa-off  llama-bench pp512 with -fa off.
 * Flash attention: LlamaEngine leaves node-llama-cpp's default, "auto", like llama-bench's default -fa auto (both
 * resolve to on for the CPU).
 * Every sample is its own child process (the engine is chosen once per process); each round runs the engines in
 * rotating order (ABC, BCA, CAB …); rows print the medians over --runs rounds, ratios to llama-bench, and the
 * 1-minute load average at the row's start and end. Our engine's single-sequence context has n_batch = n_ubatch =
 * node-llama-cpp's default batch size (512), so a 512-token prompt is one ubatch for both.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { makeTinyModel } from "../src/engine/tiny-model";
import { exactPromptIds, SHAPES } from "./bench-peer-lib";

/** The generated models of scripts/bench-peer.ts (same shapes, same generator). */

/** The path of the mapped llama-addon.node (Linux /proc; "" elsewhere). */
function mappedAddon(): string {
  try { return fs.readFileSync("/proc/self/maps", "utf8").split("\n").map((l) => l.split(/\s+/).slice(5).join(" ")).find((p) => p.endsWith("/llama-addon.node")) ?? ""; } catch { return ""; }
}

/**
 * Points node-llama-cpp at the built engine in `engineDir` the way serve does (selectEngine: verify, OpenMP
 * settings); returns the OpenMP settings applied. Must run before node-llama-cpp is imported.
 */
async function useBuiltEngine(engineDir: string): Promise<Record<string, string> | undefined> {
  const nlcVersion = (JSON.parse(fs.readFileSync(path.resolve(import.meta.dir, "../node_modules/node-llama-cpp/package.json"), "utf8")) as { version: string }).version;
  // What the compiled binary's plugin (scripts/build.ts) makes of every @node-llama-cpp/<folder> package: its
  // getBinsDir() answers the dir selectEngine verified.
  Bun.plugin({ name: "bench-built-engine", setup(build) {
    // A runtime plugin's onResolve does not see node_modules' bare specifiers; onLoad of the package's file does.
    build.onLoad({ filter: /[\\/]@node-llama-cpp[\\/][^\\/]+[\\/]dist[\\/]index\.js$/ }, (args) => {
      const pkg = `@node-llama-cpp/${path.basename(path.dirname(path.dirname(args.path)))}`;
      return { loader: "js", contents:
        `export function getBinsDir() { const b = globalThis.__APPLIANCE_ENGINE_BINS__?.[${JSON.stringify(pkg)}]; ` +
        `return b ? { binsDir: b, packageVersion: ${JSON.stringify(nlcVersion)} } : { binsDir: undefined, packageVersion: "none" }; }` };
    });
  } });
  const { selectEngine } = await import("../src/engine/engine-select");
  return selectEngine({ use: "built", dir: engineDir }, nlcVersion).omp;
}

/** Prompts timed per sample after the warm-up (their median is the sample), as llama-bench's -r (their mean). */
const REPS = 3;
const middle = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The prompt: BOS + 511 tokens (llama-bench's pp512 is 512 tokens), each call another one (no reused prefix). */
const PROMPT_TOKENS = 511;

/**
 * Prefill through LlamaEngine (what serve runs): the 512-token prompt (token ids, BOS added by the engine), max 1
 * token, greedy; prompt tokens ÷ seconds from complete() to its result, after one warm-up prompt.
 */
async function prefillEngine(model: string, threads: number): Promise<number> {
  const { LlamaEngine } = await import("../src/engine/llama");
  const { silentLogger } = await import("../src/log/logger");
  const engine = await LlamaEngine.create({ models: [{ id: "bench", path: model }], threads, ctxSize: 2048, parallel: 1, maxQueue: 4, gpu: false, log: silentLogger() });
  try {
    const tps: number[] = [];
    for (let i = 0; i <= REPS; i++) { // run 0 warms up
      const prompt = exactPromptIds((text) => engine.tokenize("bench", text), PROMPT_TOKENS);
      const t0 = performance.now();
      const g = await engine.complete({ model: "bench", prompt, sampling: { maxTokens: 1, temperature: 0 }, signal: new AbortController().signal });
      if (i > 0) tps.push(g.promptTokens / ((performance.now() - t0) / 1000));
      if (g.promptTokens !== PROMPT_TOKENS + 1) throw new Error(`LlamaEngine counted ${g.promptTokens} prompt tokens, not ${PROMPT_TOKENS + 1}`);
    }
    return middle(tps);
  } finally {
    await engine.dispose();
  }
}

/**
 * The --flash-attention diagnostic: node-llama-cpp driven directly with the options openLlama (llama-load.ts) uses,
 * flash attention forced on or off in the context (LlamaEngine and llama-bench leave it at "auto": on for the CPU).
 * The same 512-token prompt, 1 token sampled, after a warm-up.
 */
async function prefillDirect(model: string, threads: number, flashAttention: boolean): Promise<number> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, maxThreads: threads, logLevel: LlamaLogLevel.error });
  const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const ctx = await m.createContext({ contextSize: 2048, sequences: 1, threads, flashAttention });
  if (ctx.flashAttention !== flashAttention) throw new Error(`node-llama-cpp did not set flash attention to ${flashAttention}`);
  const seq = ctx.getSequence();
  const tps: number[] = [];
  for (let i = 0; i <= REPS; i++) { // run 0 warms up
    await seq.clearHistory();
    const tokens = [m.tokens.bos!, ...exactPromptIds((text) => m.tokenize(text, false) as number[], PROMPT_TOKENS)] as typeof seq.contextTokens;
    const t0 = performance.now();
    for await (const _ of seq.evaluate(tokens, { temperature: 0 })) break;
    if (i > 0) tps.push(tokens.length / ((performance.now() - t0) / 1000));
  }
  await ctx.dispose(); await m.dispose(); await llama.dispose();
  return middle(tps);
}

/** Child mode: `--child embedded|built|built-fa-on|built-fa-off MODEL THREADS [ENGINE_DIR]` prints one JSON line { tps, addon, omp }. */
async function child([kind, model, threads, engineDir]: string[]) {
  const built = kind!.startsWith("built");
  const omp = built ? await useBuiltEngine(engineDir!) : undefined;
  const tps = kind === "built-fa-on" || kind === "built-fa-off" ? await prefillDirect(model!, Number(threads), kind === "built-fa-on")
    : await prefillEngine(model!, Number(threads));
  const addon = mappedAddon();
  const fromDir = Boolean(engineDir) && addon.startsWith(path.resolve(engineDir!) + "/");
  if (built !== fromDir) throw new Error(`${kind}: llama-addon.node was mapped from ${addon || "nowhere"}`);
  console.log(JSON.stringify({ tps, addon, omp }));
}

if (Bun.argv[2] === "--child") {
  await child(Bun.argv.slice(3));
  process.exit(0);
}

const { load1, median } = await import("./bench-peer-lib");
const { peerBuild } = await import("./peer-build");
const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  "engine-dir": { type: "string" }, sizes: { type: "string", default: "28,155" }, threads: { type: "string", default: "1,2" },
  runs: { type: "string", default: "3" }, "flash-attention": { type: "boolean", default: false },
} });
const engineDir = values["engine-dir"] && path.resolve(values["engine-dir"]);
const runs = Number(values.runs), sizes = values.sizes.split(","), threadCounts = values.threads.split(",").map(Number);
for (const s of sizes) if (!SHAPES[s]) { console.error(`--sizes: ${s} is not one of ${Object.keys(SHAPES).join(", ")}`); process.exit(2); }
const peer = await peerBuild();
if ("skip" in peer) { console.error(`no llama-bench to compare with: ${peer.skip}`); process.exit(1); }
const llamaBench = peer.llamaBench;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-prefill-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
const f = (x: number, d = 1) => x.toFixed(d);

type Engine = "embedded" | "built" | "built-fa-on" | "built-fa-off" | "llama-bench-fa-off" | "llama-bench";
if (values["flash-attention"] && !engineDir) { console.error("--flash-attention needs --engine-dir"); process.exit(2); }
const engines: Engine[] = ["embedded", ...(engineDir ? ["built" as const] : []), ...(values["flash-attention"] ? ["built-fa-on" as const, "built-fa-off" as const, "llama-bench-fa-off" as const] : []), "llama-bench"];
const ours = engines.filter((e) => e !== "llama-bench");
const addons = new Map<Engine, string>();

/** One prefill sample (tokens/s) of `e`, in a fresh process. */
function sample(e: Engine, model: string, threads: number): number {
  const cmd = e.startsWith("llama-bench")
    ? [llamaBench, "-m", model, "-p", "512", "-n", "0", "-t", String(threads), "-r", String(REPS), "-o", "json", ...(e === "llama-bench-fa-off" ? ["-fa", "off"] : [])]
    : [process.execPath, import.meta.path, "--child", e, model, String(threads), ...(engineDir ? [engineDir] : [])];
  const r = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${e} ${threads}t exited ${r.exitCode}: ${r.stderr.toString().slice(-1500)}`);
  const out = r.stdout.toString();
  if (e.startsWith("llama-bench")) {
    const j = (JSON.parse(out) as { avg_ts: number; n_batch: number; n_ubatch: number; flash_attn: unknown; type_k: string }[])[0]!;
    addons.set(e, `${llamaBench} (n_batch ${j.n_batch}, n_ubatch ${j.n_ubatch}, flash_attn ${String(j.flash_attn)}, type_k ${j.type_k})`);
    return j.avg_ts;
  }
  const j = JSON.parse(out.trim().split("\n").at(-1)!) as { tps: number; addon: string; omp?: Record<string, string> };
  addons.set(e, `${j.addon}${j.omp ? ` (${Object.entries(j.omp).map(([k, v]) => `${k}=${v}`).join(" ")})` : ""}`);
  return j.tps;
}

const table: string[] = [];
for (const size of sizes) {
  const model = path.join(dir, `bench-${size}.gguf`);
  const { params } = await makeTinyModel(model, { ...SHAPES[size]!, ctx: 2048 });
  console.log(`model ${f(params / 1e6)} M params F32; ${runs} rounds, engines in rotating order: ${engines.join(", ")}`);
  for (const t of threadCounts) {
    const xs = new Map<Engine, number[]>(engines.map((e) => [e, []]));
    const l0 = load1();
    for (let i = 0; i < runs; i++) {
      for (let k = 0; k < engines.length; k++) {
        const e = engines[(i + k) % engines.length]!;
        xs.get(e)!.push(sample(e, model, t));
      }
    }
    const m = new Map([...xs].map(([e, v]) => [e, median(v)]));
    const peerTps = m.get("llama-bench")!;
    const load = `${f(l0)}→${f(load1())}`;
    const all = (e: Engine) => xs.get(e)!.map((x) => f(x, 0)).join("/");
    console.log(`${size} M, ${t} thread${t > 1 ? "s" : ""}: ${engines.map((e) => `${e} ${f(m.get(e)!)} tok/s [${all(e)}]`).join(", ")}; ` +
      `${ours.map((e) => `${e}/llama-bench ${f(m.get(e)! / peerTps, 2)}`).join(", ")}; load ${load}`);
    table.push(`| ${size} M | ${t} | ${engines.map((e) => f(m.get(e)!)).join(" | ")} | ${ours.map((e) => e === "built" ? `**${f(m.get(e)! / peerTps, 2)}**` : f(m.get(e)! / peerTps, 2)).join(" | ")} | ${load} |`);
  }
}
for (const [e, a] of addons) console.log(`${e}: ${a}`);
console.log(`\n| model | threads | ${engines.map((e) => `${e === "llama-bench" ? "llama-bench pp512" : e} (tok/s)`).join(" | ")} | ${ours.map((e) => `${e} / llama-bench`).join(" | ")} | load |`);
console.log(`|${"---|".repeat(3 + engines.length + ours.length)}`);
for (const l of table) console.log(l);
