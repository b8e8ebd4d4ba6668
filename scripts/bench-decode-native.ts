#!/usr/bin/env bun
/**
 * bun scripts/bench-decode-native.ts --engine-dir DIR [--engine-dir-b DIR] [--size 28|155] [--threads 1,2] [--tokens 300] [--rounds 4]
 *
 * Decode speed of llama.cpp's libraries alone, no JS and no HTTP: one small C++ driver (greedy, one token per
 * llama_decode, flash attention on, context 2048, as the engine's contexts) is compiled twice from the same source,
 * against the peer's static build (scripts/peer-build.ts: llama.cpp's own cmake, as llama-server is linked) and
 * against an engine `appliance engine build` made (its shared libraries, as the addon loads them), and both run on
 * the same generated model in interleaved rounds. Prints, per thread count, each round's median µs per token of
 * every variant and the medians over the rounds, with engine / peer as a speed ratio (tokens per second).
 *
 * Why (issue 11): the served decode gap at 28 M was put down to the JS between two decode steps until this showed
 * that the engine's own llama_decode was ~15% slower than the peer's for the same source: node-llama-cpp builds
 * shared libraries with -fPIC, and GCC's semantic interposition kept calls indirect (ENGINE_COMPILER_FLAGS in
 * src/engine/engine-compile.ts). `--engine-dir-b` adds a second engine (e.g. one built before a build change).
 * Needs the peer build (cmake, a compiler, git) and c++; says why and exits 3 when one is missing.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { engineFolder } from "../src/engine/engine-compile";
import { versionDirOf } from "../src/engine/engine-store";
import { makeTinyModel } from "../src/engine/tiny-model";
import { cpuLine, load1, median, SHAPES } from "./bench-peer-lib";
import { peerBuild } from "./peer-build";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  "engine-dir": { type: "string" }, "engine-dir-b": { type: "string" }, size: { type: "string", default: "28" },
  threads: { type: "string", default: "1,2" }, tokens: { type: "string", default: "300" }, rounds: { type: "string", default: "4" },
} });
if (!values["engine-dir"] || !SHAPES[values.size]) {
  console.error("usage: bun scripts/bench-decode-native.ts --engine-dir DIR [--engine-dir-b DIR] [--size 28|155] [--threads 1,2] [--tokens 300] [--rounds 4]");
  process.exit(2);
}

/** The driver: prints one line, "us_per_token N": the median of three timed runs after a warm-up run. */
const DRIVER = String.raw`
#include "llama.h"
#include "ggml-backend.h"
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
int main(int argc, char** argv) {
  const char* model_path = argv[1]; int threads = atoi(argv[2]); int n = atoi(argv[3]);
  if (argc > 4) ggml_backend_load_all_from_path(argv[4]);
  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params(); mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(model_path, mp);
  if (!model) { fprintf(stderr, "model load failed\n"); return 1; }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 2048; cp.n_batch = 512; cp.n_ubatch = 512; cp.n_seq_max = 1;
  cp.n_threads = threads; cp.n_threads_batch = threads; cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
  llama_context* ctx = llama_init_from_model(model, cp);
  const llama_vocab* vocab = llama_model_get_vocab(model); const int nv = llama_vocab_n_tokens(vocab);
  std::vector<double> runs;
  for (int run = 0; run < 4; run++) {
    llama_memory_clear(llama_get_memory(ctx), true);
    llama_token tok = llama_vocab_bos(vocab);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; i++) {
      llama_batch b = llama_batch_get_one(&tok, 1);
      if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
      const float* logits = llama_get_logits_ith(ctx, -1); int best = 0;
      for (int k = 1; k < nv; k++) if (logits[k] > logits[best]) best = k;
      tok = llama_vocab_is_eog(vocab, best) ? llama_vocab_bos(vocab) : best;
    }
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n;
    if (run > 0) runs.push_back(us);
  }
  std::sort(runs.begin(), runs.end());
  printf("us_per_token %.1f\n", runs[runs.size() / 2]);
  return 0;
}
`;

const peer = await peerBuild({ log: (l) => console.error(l) });
if ("skip" in peer) { console.error(`bench-decode-native: no peer build: ${peer.skip}`); process.exit(3); }
const cxx = Bun.which("c++");
if (!cxx) { console.error("bench-decode-native: c++ not found (Debian: apt-get install g++)"); process.exit(3); }

const work = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-native-"));
process.on("exit", () => fs.rmSync(work, { recursive: true, force: true }));
fs.writeFileSync(path.join(work, "driver.cpp"), DRIVER);
const src = path.join(peer.dir, "src"), build = path.join(peer.dir, "build");
const includes = [`-I${path.join(src, "include")}`, `-I${path.join(src, "ggml", "include")}`];

function compile(out: string, libs: string[]): void {
  const r = Bun.spawnSync([cxx!, "-O2", "-std=c++17", ...includes, path.join(work, "driver.cpp"), "-o", out, ...libs, "-lpthread"], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`compiling the driver (${path.basename(out)}) failed: ${r.stderr.toString().trim()}`);
}

const nlcVersion = JSON.parse(fs.readFileSync(path.join(import.meta.dir, "../node_modules/node-llama-cpp/package.json"), "utf8")).version as string;
/** Where `engine build` installed the CPU engine under engine.dir DIR. */
function engineLibDir(dir: string): string {
  const lib = path.join(versionDirOf(dir, nlcVersion), engineFolder(false));
  if (!fs.existsSync(path.join(lib, "llama-addon.node"))) throw new Error(`no CPU engine for node-llama-cpp ${nlcVersion} in ${dir} (expected ${lib})`);
  return lib;
}

interface Variant { name: string; exe: string; backends?: string }
const variants: Variant[] = [];
const peerExe = path.join(work, "peer-static");
compile(peerExe, [path.join(build, "src", "libllama.a"), ...["ggml", "ggml-cpu", "ggml-base"].map((l) => path.join(build, "ggml", "src", `lib${l}.a`)), "-fopenmp"]);
variants.push({ name: "peer (static)", exe: peerExe });
for (const [key, label] of [["engine-dir", "engine"], ["engine-dir-b", "engine-b"]] as const) {
  const dir = values[key];
  if (!dir) continue;
  const lib = engineLibDir(dir), files = fs.readdirSync(lib);
  const pick = (re: RegExp) => files.find((f) => re.test(f)) ?? (() => { throw new Error(`${lib} has no file matching ${re}`); })();
  const exe = path.join(work, label);
  compile(exe, [`-L${lib}`, `-l:${pick(/^libllama\.(?!.*common).*so$/)}`, `-l:${pick(/^libggml\.(?!base|cpu).*so$/)}`, "-l:libggml-base.so", `-Wl,-rpath,${lib}`]);
  variants.push({ name: `${label} (${lib})`, exe, backends: lib });
}

const model = path.join(work, "m.gguf");
await makeTinyModel(model, { ...SHAPES[values.size]!, ctx: 2048 });
const tokens = Number(values.tokens), rounds = Number(values.rounds);
console.log(`${cpuLine()}; model ${values.size} M F32; ${tokens} tokens per run; ${rounds} rounds; load ${load1().toFixed(2)}`);

function runOnce(v: Variant, threads: number): number {
  const r = Bun.spawnSync([v.exe, model, String(threads), String(tokens), ...(v.backends ? [v.backends] : [])], { stderr: "pipe" });
  const m = /us_per_token ([\d.]+)/.exec(r.stdout.toString());
  if (r.exitCode !== 0 || !m) throw new Error(`${v.name} failed: ${r.stderr.toString().trim()}`);
  return Number(m[1]);
}

for (const threads of values.threads.split(",").map(Number)) {
  const per = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round so no variant always runs first (or right after another's warm page cache).
    const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
    for (const v of order) per.get(v.name)!.push(runOnce(v, threads));
    console.log(`threads ${threads} round ${round + 1}: ${variants.map((v) => `${v.name.split(" ")[0]} ${per.get(v.name)!.at(-1)!.toFixed(0)} µs`).join(", ")} (load ${load1().toFixed(2)})`);
  }
  const peerMedian = median(per.get(variants[0]!.name)!);
  for (const v of variants) {
    const m = median(per.get(v.name)!);
    console.log(`threads ${threads}: ${v.name}: ${m.toFixed(0)} µs per token (${(1e6 / m).toFixed(1)} tok/s), ${(peerMedian / m).toFixed(2)} of the peer's speed`);
  }
}
