#!/usr/bin/env bun
/**
 * bun scripts/engine-build.ts [--portable]     build (or reuse) the local llama.cpp engine; prints it as JSON
 *
 * Our own node-llama-cpp binaries (llama-addon.node + the ggml/llama libraries) compiled from the llama.cpp source
 * node-llama-cpp ships (node_modules/node-llama-cpp/llama/gitRelease.bundle) with OpenMP and this CPU's features
 * (GGML_NATIVE=ON), i.e. built like the peer llama-server (scripts/peer-build.ts). The npm prebuilt libraries have
 * no OpenMP: ggml's own spin barrier then collapses decode when threads exceed free cores, and their prefill is about
 * half of a native build (issue 11). `--portable` builds every CPU variant instead (GGML_CPU_ALL_VARIANTS, chosen at
 * load time like the prebuilt package) for a binary that runs on other x86-64 CPUs.
 *
 * node-llama-cpp drives the build itself (`source download --gpu false`, which clones the local bundle: nothing is
 * downloaded). It always builds into its own package folder and then prefers that local build, so the build runs
 * in a private copy of the package (a staging node_modules whose other entries link to the repo's) and the result
 * is moved out: ~/.cache/appliance/engine/<key>/bins/linux-x64/ (or $APPLIANCE_ENGINE_CACHE/<key>/), where <key>
 * is the sha256 of the bundle, node-llama-cpp's version, the compilers' and cmake's versions and the cmake options.
 * libgomp.so.1 is copied next to the libraries (their RUNPATH is $ORIGIN), so a target without GCC's runtime still
 * loads them. A finished build leaves done.json (every file with its sha256); a second caller waits on a lock.
 * Needs cmake, a C/C++ compiler, git, node and npm (node-llama-cpp's build runs cmake-js through npm); when one is
 * missing, engineBuild() resolves to { skip: reason } so `bun run build` can say so and embed the prebuilt instead.
 * The compile runs under `nice -n 19`. The staged addon source gets our decode-thread patch first
 * (src/engine/engine-decode-thread.ts: every llama_decode on one native thread, so one OpenMP master).
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { ENGINE_COMPILER_FLAGS } from "../src/engine/engine-compile";
import { DECODE_THREAD_FILE, DECODE_THREAD_PATCH, patchDecodeThread } from "../src/engine/engine-decode-thread";
import { takeBuildLock } from "./build-lock";

/** A finished local engine build: the folder to embed (node-llama-cpp's bins layout) and what it holds. */
export interface EngineBuild {
  key: string; dir: string; binsDir: string; folder: string; portable: boolean; openmp: boolean;
  cmakeOptions: Record<string, string>; compiler: string; seconds: number; files: { name: string; sha256: string }[];
  /** Our source patches applied to the addon. */
  patches: string[];
}
/** Why no local engine is available (a missing tool, or a failed build). */
export interface EngineSkip { skip: string }

const repoRoot = path.resolve(import.meta.dir, "..");
const nlcDir = path.join(repoRoot, "node_modules/node-llama-cpp");
/** The llama.cpp source node-llama-cpp ships, as a git bundle. */
export const bundlePath = path.join(nlcDir, "llama/gitRelease.bundle");
/** The folder name inside bins/, as in the prebuilt @node-llama-cpp/linux-x64 package. */
const FOLDER = "linux-x64";
const REQUIRED_TOOLS = ["cmake", "git", "c++", "cc", "node", "npm"] as const;

/** The cmake options of each flavour (node-llama-cpp reads them from NODE_LLAMA_CPP_CMAKE_OPTION_* variables). */
export function cmakeOptionsFor(portable: boolean): Record<string, string> {
  // cmake-js puts its own CMAKE_CXX_FLAGS (its define) after these options, so a CMAKE_CXX_FLAGS here would be
  // replaced: C++ gets the flag through the Release flags instead (CMake's defaults for them, plus the flag).
  const flags = { CMAKE_C_FLAGS: ENGINE_COMPILER_FLAGS, CMAKE_CXX_FLAGS_RELEASE: `-O3 -DNDEBUG ${ENGINE_COMPILER_FLAGS}` };
  return portable
    ? { GGML_OPENMP: "ON", GGML_NATIVE: "OFF", GGML_CPU_ALL_VARIANTS: "ON", GGML_BACKEND_DL: "ON", ...flags }
    : { GGML_OPENMP: "ON", GGML_NATIVE: "ON", ...flags };
}

function toolVersion(cmd: string): string {
  const r = Bun.spawnSync([cmd, "--version"], { stderr: "pipe" });
  return r.exitCode === 0 ? r.stdout.toString().split("\n")[0]!.trim() : "unknown";
}

async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function run(cmd: string[], opts: { cwd: string; logFile: string; env?: Record<string, string> }): Promise<void> {
  const fd = fs.openSync(opts.logFile, "a");
  fs.writeSync(fd, `\n$ ${cmd.join(" ")}\n`);
  const p = Bun.spawn(cmd, { cwd: opts.cwd, stdout: fd, stderr: fd, stdin: "ignore", env: { ...process.env, ...opts.env } });
  const rc = await p.exited;
  fs.closeSync(fd);
  if (rc !== 0) throw new Error(`${cmd.slice(0, 6).join(" ")} … exited ${rc} (log: ${opts.logFile})`);
}

/** The stamp of a finished build, if every file it lists is still there with its digest's size. */
function stamped(dir: string): EngineBuild | null {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, "done.json"), "utf8")) as EngineBuild;
    if (s.files.every((f) => fs.existsSync(path.join(s.binsDir, s.folder, f.name)))) return s;
  } catch { /* not built yet */ }
  return null;
}

/** A private node-llama-cpp to build in: a copy of the package (without builds or clones) beside links to the rest. */
function stage(stageDir: string): string {
  fs.rmSync(stageDir, { recursive: true, force: true });
  const nm = path.join(stageDir, "node_modules");
  fs.mkdirSync(nm, { recursive: true });
  for (const e of fs.readdirSync(path.join(repoRoot, "node_modules"))) {
    if (e !== "node-llama-cpp") fs.symlinkSync(path.join(repoRoot, "node_modules", e), path.join(nm, e));
  }
  const skip = new Set(["llama/localBuilds", "llama/llama.cpp", "llama/lastBuild.json"].map((p) => path.join(nlcDir, p)));
  fs.cpSync(nlcDir, path.join(nm, "node-llama-cpp"), { recursive: true, filter: (src) => !skip.has(src) });
  return path.join(nm, "node-llama-cpp");
}

/** The libgomp a library links against (from ldd), to ship beside it. */
function libgompOf(lib: string): string | null {
  const r = Bun.spawnSync(["ldd", lib], { stderr: "ignore" });
  const m = /libgomp\.so\.1 => (\S+)/.exec(r.stdout.toString());
  return m ? fs.realpathSync(m[1]!) : null;
}

/** Why this machine cannot build the engine, or null when it can. */
function missingTool(): string | null {
  if (process.platform !== "linux" || process.arch !== "x64") return `local engine builds are wired for linux-x64 only (this is ${process.platform}-${process.arch})`;
  if (!fs.existsSync(bundlePath)) return `no llama.cpp source bundle at ${bundlePath}`;
  for (const tool of REQUIRED_TOOLS) if (!Bun.which(tool)) return `${tool} not found (Debian: apt-get install cmake g++ git nodejs npm)`;
  return null;
}

/** The cache dir of a build: keyed by the source, node-llama-cpp, the tools, the options and (native) this CPU's flags. */
export async function cacheDir(portable: boolean, cacheRoot?: string) {
  const cmakeOptions = cmakeOptionsFor(portable);
  const nlcVersion = JSON.parse(fs.readFileSync(path.join(nlcDir, "package.json"), "utf8")).version as string;
  const compiler = `${toolVersion("cc")} / ${toolVersion("c++")}`;
  const key = createHash("sha256").update(JSON.stringify({
    bundle: await sha256File(bundlePath), nlcVersion, compiler, cmake: toolVersion("cmake"), cmakeOptions,
    patch: await sha256File(path.join(repoRoot, "src/engine/engine-decode-thread.ts")),
    cpu: portable ? "any" : fs.readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:.*$/m)?.[0] ?? "",
  })).digest("hex");
  const root = cacheRoot ?? process.env.APPLIANCE_ENGINE_CACHE ?? path.join(os.homedir(), ".cache/appliance/engine");
  return { key, dir: path.join(root, key), cmakeOptions, compiler };
}

/** The finished build in the cache for these options, without building; null when there is none (or no tools). */
export async function cachedEngineBuild(opts: { portable?: boolean; cacheRoot?: string } = {}): Promise<EngineBuild | null> {
  if (missingTool()) return null;
  return stamped((await cacheDir(opts.portable ?? false, opts.cacheRoot)).dir);
}

/**
 * Build the engine from node-llama-cpp's bundled llama.cpp source, or reuse the cached build.
 * Resolves to the build, or to { skip } naming what is missing or what failed. Never downloads anything.
 */
export async function engineBuild(opts: { portable?: boolean; cacheRoot?: string; log?: (line: string) => void } = {}): Promise<EngineBuild | EngineSkip> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const portable = opts.portable ?? false;
  const missing = missingTool();
  if (missing) return { skip: missing };
  const { key, dir, cmakeOptions, compiler } = await cacheDir(portable, opts.cacheRoot);
  const done = stamped(dir);
  if (done) return done;
  fs.mkdirSync(dir, { recursive: true });
  const taken = await takeBuildLock(dir, stamped, "engine build", log);
  if ("done" in taken) return taken.done;
  const { lock } = taken;
  const t0 = performance.now();
  const stageDir = path.join(dir, "stage"), logFile = path.join(dir, "build.log");
  try {
    const pkg = stage(stageDir);
    const addon = path.join(pkg, "llama", DECODE_THREAD_FILE);
    fs.writeFileSync(addon, patchDecodeThread(fs.readFileSync(addon, "utf8"), JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")).version));
    const env = Object.fromEntries(Object.entries(cmakeOptions).map(([k, v]) => [`NODE_LLAMA_CPP_CMAKE_OPTION_${k}`, v]));
    log(`engine build: llama.cpp from ${path.relative(repoRoot, bundlePath)} with ${Object.entries(cmakeOptions).map(([k, v]) => `${k}=${v}`).join(" ")} (${compiler}); log in ${logFile}; takes minutes`);
    await run(["nice", "-n", "19", "node", path.join(pkg, "dist/cli/cli.js"), "source", "download", "--gpu", "false"], { cwd: stageDir, logFile, env });
    const last = JSON.parse(fs.readFileSync(path.join(pkg, "llama/lastBuild.json"), "utf8")) as { folderName: string };
    const release = path.join(pkg, "llama/localBuilds", last.folderName, "Release");
    const cache = fs.readFileSync(path.join(pkg, "llama/localBuilds", last.folderName, "CMakeCache.txt"), "utf8");
    if (!/^GGML_OPENMP:BOOL=ON$/m.test(cache) || !/OpenMP_C_FLAGS:STRING=-fopenmp/.test(cache)) throw new Error(`cmake did not enable OpenMP (see ${logFile})`);
    const out = path.join(dir, "bins", FOLDER);
    fs.rmSync(path.join(dir, "bins"), { recursive: true, force: true });
    fs.mkdirSync(out, { recursive: true });
    for (const f of fs.readdirSync(release)) fs.copyFileSync(path.join(release, f), path.join(out, f));
    const cpuLib = fs.readdirSync(out).find((f) => /^libggml-cpu.*\.so$/.test(f));
    const gomp = cpuLib && libgompOf(path.join(out, cpuLib));
    if (!gomp) throw new Error(`no libgomp.so.1 linked by ${cpuLib ?? "a libggml-cpu library"}`);
    fs.copyFileSync(gomp, path.join(out, "libgomp.so.1"));
    const files = await Promise.all(fs.readdirSync(out).sort().map(async (name) => ({ name, sha256: await sha256File(path.join(out, name)) })));
    const result: EngineBuild = { key, dir, binsDir: path.join(dir, "bins"), folder: FOLDER, portable, openmp: true, cmakeOptions, compiler,
      seconds: Math.round((performance.now() - t0) / 1000), files, patches: [DECODE_THREAD_PATCH] };
    fs.writeFileSync(path.join(dir, "done.json"), JSON.stringify(result, null, 2));
    fs.rmSync(stageDir, { recursive: true, force: true });
    log(`engine build: done in ${result.seconds} s (${out})`);
    return result;
  } catch (e) {
    return { skip: `engine build failed: ${(e as Error).message}` };
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Bun.argv.slice(2), options: { portable: { type: "boolean" } } });
  const r = await engineBuild({ portable: values.portable });
  console.log(JSON.stringify(r, null, 2));
  if ("skip" in r) process.exit(1);
}
