/**
 * Compiles node-llama-cpp's addon and llama.cpp from the source archive embedded in the binary, with cmake
 * directly (no cmake-js, node or npm): the defines cmake-js and node-llama-cpp's compileLLamaCpp.js pass, with
 * CMAKE_JS_INC pointing at the embedded N-API headers (Bun provides those symbols when it loads the addon, so on
 * Linux there is no node library to link: CMAKE_JS_LIB is empty, as cmake-js leaves it).
 *
 * CPU engine: OpenMP and this CPU's features (GGML_NATIVE=ON), i.e. built like the peer llama-server; --portable
 * builds every CPU variant instead (chosen at load time, like the npm prebuilt). GPU: GGML_CUDA / GGML_VULKAN on top.
 * The result is node-llama-cpp's layout (one folder per package: linux-x64, linux-x64-cuda …) plus libgomp.so.1
 * beside the libraries (their RUNPATH is $ORIGIN), so it loads without GCC's runtime installed elsewhere.
 * The addon source in the archive carries our decode-thread patch (engine-decode-thread.ts; applied when the archive
 * is made); a compile checks it is there, so no engine is ever built without it.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { sha256Bytes } from "../util/sha256";
import { DECODE_THREAD_FILE, DECODE_THREAD_PATCH, hasDecodeThreadPatch } from "./engine-decode-thread";
import { knownBuildFailure } from "./engine-failure";
import type { EngineSourceArchive } from "./engine-sources";
import { toolVersion, type BuildTools, type EngineGpu } from "./engine-tools";

export interface CompileOptions {
  gpu: EngineGpu;
  portable: boolean;
  /** CUDA: the GPU architectures to compile for ("80;90"); undefined: llama.cpp's default, the GPUs cmake sees. */
  cudaArch?: string;
  /** Parallel compile jobs (the usable CPUs). */
  jobs: number;
  tools: BuildTools;
  /** Empty temp dir for the sources and the build tree (the caller removes it). */
  workDir: string;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

/** What a finished compile produced and how. */
export interface CompiledEngine {
  /** node-llama-cpp's folder name for this build (linux-x64, linux-x64-cuda, linux-x64-vulkan). */
  folder: string;
  /** The folder with every file to install (flat). */
  dir: string;
  cmakeOptions: Record<string, string>;
  openmp: boolean;
  compiler: string;
  cmake: string;
  seconds: number;
  /** Source patches the compiled addon carries (the archive's, e.g. DECODE_THREAD_PATCH). */
  patches: string[];
}

/** node-llama-cpp's platform name for this OS. */
const nlcPlatform = () => (process.platform === "darwin" ? "mac" : process.platform === "win32" ? "win" : process.platform);

/** The folder node-llama-cpp looks for (getBuildFolderNameForBuildOptions without custom options). */
export const engineFolder = (gpu: EngineGpu | "metal") => [nlcPlatform(), process.arch, ...(gpu ? [gpu] : [])].join("-");

/**
 * The C and C++ flags of every engine build on Linux. node-llama-cpp builds llama.cpp as shared libraries (-fPIC),
 * and GCC then treats each exported function as replaceable by another library (semantic interposition): it does not
 * inline it or call it directly, even from its own file. llama.cpp's own build links statically, so the peer's code
 * has no such calls. Measured here (28 M F32 model, 1 thread, the same source, llama_decode one token at a time from a
 * C++ driver, 4 interleaved rounds): static 4.7-5.3 ms per token, shared 5.2-5.5, shared with this flag 4.7-4.9, static
 * with -fPIC 5.1-5.7 (so it is the PIC code, not the dynamic loading); served over HTTP (bench-engine-built, engines
 * built without and with it, four A/B runs) 2-thread decode went from 0.79-0.85 of llama-server's to 0.80-0.93, 1
 * thread from 0.80-0.86 to 0.88-0.96. GCC and clang both take the flag.
 */
export const ENGINE_COMPILER_FLAGS = "-fno-semantic-interposition";

/**
 * Why an installed engine is slower than one this binary would build (recorded options without
 * ENGINE_COMPILER_FLAGS: built by an earlier binary), or null. `engine status` says it; nothing refuses such an engine.
 */
export function outdatedEngineBuild(cmakeOptions: Record<string, string>, platform: NodeJS.Platform = process.platform): string | null {
  const has = (flags: string | undefined) => (flags ?? "").split(/\s+/).includes(ENGINE_COMPILER_FLAGS);
  if (platform !== "linux" || (has(cmakeOptions.CMAKE_C_FLAGS) && has(cmakeOptions.CMAKE_CXX_FLAGS))) return null;
  return `built without ${ENGINE_COMPILER_FLAGS} (an earlier binary's build): its decode is slower than a build by this binary ` +
    "(~15% with 1 thread on a 28 M model, README: Compiled like the peer); run sudo appliance engine build again";
}

/** Where a build in `workDir` logs cmake's output (engine build keeps it when the build fails for an unknown reason). */
export const buildLogOf = (workDir: string) => path.join(workDir, "build.log");

/** The cmake options of a build (what node-llama-cpp's own build sets, plus ours). */
export function engineCmakeOptions(gpu: EngineGpu, portable: boolean, release: string, cudaArch?: string): Record<string, string> {
  const platform = `${nlcPlatform()}-${process.arch}`;
  return {
    CMAKE_BUILD_TYPE: "Release", CMAKE_CONFIGURATION_TYPES: "Release",
    NLC_CURRENT_PLATFORM: platform, NLC_TARGET_PLATFORM: platform,
    // The suffix of libllama/libggml's file names (node-llama-cpp: gpu.release[.options hash]).
    NLC_VARIANT: [...(gpu ? [gpu] : []), release, "built"].join("."),
    GGML_BUILD_NUMBER: "1", GGML_METAL: "OFF", GGML_CCACHE: "OFF",
    LLAMA_CURL: "OFF", LLAMA_HTTPLIB: "OFF", LLAMA_BUILD_BORINGSSL: "OFF", LLAMA_OPENSSL: "OFF",
    GGML_OPENMP: "ON",
    ...(process.platform === "linux" && { CMAKE_C_FLAGS: ENGINE_COMPILER_FLAGS, CMAKE_CXX_FLAGS: ENGINE_COMPILER_FLAGS }),
    ...(portable ? { GGML_NATIVE: "OFF", GGML_CPU_ALL_VARIANTS: "ON", GGML_BACKEND_DL: "ON" } : { GGML_NATIVE: "ON" }),
    ...(gpu === "cuda" && { GGML_CUDA: "1", ...(cudaArch && { CMAKE_CUDA_ARCHITECTURES: cudaArch }) }),
    ...(gpu === "vulkan" && { GGML_VULKAN: "1" }),
  };
}

/**
 * Runs a command with its output into `logFile`; progress lines ("[12/153]", "[ 45%]") reach `log` at most every
 * 5% or 30 s. When it fails, throws what the log shows it lacked (engine-failure.ts), else the log's tail.
 */
async function runLogged(cmd: string[], opts: { cwd: string; logFile: string; env: Record<string, string | undefined>; log: (l: string) => void; label: string }) {
  const out = fs.openSync(opts.logFile, "a");
  fs.writeSync(out, `\n$ ${cmd.join(" ")}\n`);
  const p = Bun.spawn(cmd, { cwd: opts.cwd, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let lastPct = -5, lastAt = performance.now(), partial = "";
  const onLine = (line: string) => {
    const m = /^\[\s*(\d+)\/(\d+)\]/.exec(line) ?? /^\[\s*(\d+)%\]/.exec(line);
    if (!m) return;
    const pct = m[2] ? Math.floor((100 * Number(m[1])) / Number(m[2])) : Number(m[1]);
    if (pct >= lastPct + 5 || performance.now() - lastAt > 30_000) { opts.log(`${opts.label}: ${pct}% ${line.replace(/^\[[^\]]*\]\s*/, "").slice(0, 100)}`); lastPct = pct; lastAt = performance.now(); }
  };
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      fs.writeSync(out, chunk);
      const text = partial + dec.decode(chunk, { stream: true });
      const lines = text.split("\n");
      partial = lines.pop()!;
      lines.forEach(onLine);
    }
  };
  await Promise.all([pump(p.stdout), pump(p.stderr)]);
  const rc = await p.exited;
  fs.closeSync(out);
  if (rc !== 0) {
    const text = fs.readFileSync(opts.logFile, "utf8");
    throw knownBuildFailure(text) ?? new Error(`${opts.label} failed (exit ${rc}):\n${text.split("\n").slice(-40).join("\n")}`);
  }
}

/** The libgomp a library links against (ldd), to ship beside it. */
function libgompOf(lib: string): string | null {
  const r = Bun.spawnSync(["ldd", lib], { stderr: "ignore" });
  const m = /libgomp\.so\.1 => (\S+)/.exec(r.stdout.toString());
  return m ? fs.realpathSync(m[1]!) : null;
}

/** Every built library and the addon in the build tree (plain files; no CMakeFiles objects). */
function builtFiles(buildDir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) { if (e.name !== "CMakeFiles") walk(p); } else if (e.isFile() && (/\.so(\.\d+)*$/.test(e.name) || e.name.endsWith(".node") || e.name.endsWith(".dylib"))) out.push(p);
    }
  };
  walk(buildDir);
  return out;
}

/** Extracts the embedded sources (checked against their recorded sha256), configures and builds. */
export async function compileEngine(sources: EngineSourceArchive, o: CompileOptions): Promise<CompiledEngine> {
  const t0 = performance.now();
  const archive = new Uint8Array(await Bun.file(sources.path).arrayBuffer());
  if (sha256Bytes(archive) !== sources.sha256) throw new Error("the embedded engine sources do not match their recorded sha256 (a damaged binary: run appliance verify)");
  const src = path.join(o.workDir, "src"), build = path.join(o.workDir, "build"), logFile = buildLogOf(o.workDir);
  const files = await new Bun.Archive(Bun.zstdDecompressSync(archive)).extract(src);
  o.log(`engine build: ${files} source files of llama.cpp ${sources.release} (${sources.commit.slice(0, 12)}) unpacked in ${o.workDir}`);
  if (!sources.patches.includes(DECODE_THREAD_PATCH) || !hasDecodeThreadPatch(fs.readFileSync(path.join(src, "llama", DECODE_THREAD_FILE), "utf8"))) {
    throw new Error(`the embedded engine sources lack the ${DECODE_THREAD_PATCH} patch (node-llama-cpp ${sources.nlcVersion}): this binary was built by an older build script; use a current release binary`);
  }
  const options = engineCmakeOptions(o.gpu, o.portable, sources.release, o.cudaArch);
  const defines = {
    ...options,
    CMAKE_C_COMPILER: o.tools.cc, CMAKE_CXX_COMPILER: o.tools.cxx,
    ...(o.tools.nvcc && { CMAKE_CUDA_COMPILER: o.tools.nvcc }),
    CMAKE_JS_INC: `${path.join(src, "node-api-headers", "include")};${path.join(src, "node-addon-api")}`,
    CMAKE_JS_SRC: "", CMAKE_JS_LIB: "", CMAKE_JS_VERSION: "appliance",
    CMAKE_LIBRARY_OUTPUT_DIRECTORY: path.join(build, "Release"),
  };
  // The sources' CMakeLists runs `node -p require('node-addon-api')…` for an include dir: without node (or without
  // node_modules beside the sources) it yields nothing, and CMAKE_JS_INC above carries that dir instead.
  const env = { ...process.env, NODE_PATH: "" };
  o.log(`engine build: configuring (${Object.entries(options).filter(([k]) => k.startsWith("GGML_") || k === "CMAKE_CUDA_ARCHITECTURES").map(([k, v]) => `${k}=${v}`).join(" ")}; ${o.tools.generator}); log: ${logFile} (kept if the build fails for a reason not named here)`);
  await runLogged([o.tools.cmake, "-S", path.join(src, "llama"), "-B", build, "-G", o.tools.generator, "--no-warn-unused-cli",
    ...Object.entries(defines).map(([k, v]) => `-D${k}=${v}`)], { cwd: o.workDir, logFile, env, log: o.log, label: "engine configure" });
  const cache = fs.readFileSync(path.join(build, "CMakeCache.txt"), "utf8");
  const openmp = /^GGML_OPENMP:BOOL=ON$/m.test(cache) && /^OpenMP_C_FLAGS:STRING=.*openmp/m.test(cache);
  if (!openmp) throw new Error(`cmake did not find OpenMP (GCC: the libgomp that comes with gcc; clang: libomp-dev). Log: ${logFile}`);
  o.log(`engine build: compiling with ${o.jobs} job(s) at nice 19; this takes minutes (12-14 on 2 busy CPUs here)`);
  await runLogged([o.tools.cmake, "--build", build, "--config", "Release", "--parallel", String(o.jobs)], { cwd: o.workDir, logFile, env, log: o.log, label: "engine compile" });
  const folder = engineFolder(o.gpu), dir = path.join(o.workDir, "out", folder);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of builtFiles(build)) fs.copyFileSync(f, path.join(dir, path.basename(f)));
  if (!fs.existsSync(path.join(dir, "llama-addon.node"))) throw new Error(`the build made no llama-addon.node (log: ${logFile})`);
  if (process.platform === "linux") {
    const cpuLib = fs.readdirSync(dir).find((f) => /^libggml-cpu.*\.so$/.test(f));
    const gomp = cpuLib && libgompOf(path.join(dir, cpuLib));
    if (!gomp) throw new Error(`no libgomp.so.1 linked by ${cpuLib ?? "a libggml-cpu library"}`);
    fs.copyFileSync(gomp, path.join(dir, "libgomp.so.1"));
  }
  // node-llama-cpp reads this beside llama-addon.node (resolvePrebuiltBinaryPath requires it).
  fs.writeFileSync(path.join(dir, "_nlcBuildMetadata.json"), JSON.stringify({ buildOptions: {
    customCmakeOptions: Object.fromEntries(Object.entries(options).filter(([k]) => k.startsWith("GGML_") && k !== "GGML_BUILD_NUMBER")),
    progressLogs: false, platform: nlcPlatform(), platformInfo: { name: os.type(), version: os.release() }, arch: process.arch, gpu: o.gpu,
    llamaCpp: { repo: "ggml-org/llama.cpp", release: sources.release },
  } }));
  return { folder, dir, cmakeOptions: options, openmp, compiler: `${toolVersion(o.tools.cc)} / ${toolVersion(o.tools.cxx)}`, cmake: toolVersion(o.tools.cmake),
    seconds: Math.round((performance.now() - t0) / 1000), patches: sources.patches };
}
