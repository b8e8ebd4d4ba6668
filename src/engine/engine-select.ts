/**
 * At start, before any library loads: which llama.cpp engine serve uses (config engine.use). A built engine
 * (`appliance engine build`, engine-store.ts) is verified file by file, then node-llama-cpp is pointed at it: the
 * compiled binary's getBinsDir() for each @node-llama-cpp/<folder> package answers the verified dir
 * (__APPLIANCE_ENGINE_BINS__, see scripts/build.ts); grammars still come from the embedded native dir.
 */
import path from "node:path";
import { applyOmpEnv } from "./engine-build-env";
import { engineFolder } from "./engine-compile";
import { ENGINE_NLC_VERSION } from "./engine-sources";
import { holdsEngine, verifyEngineDir, versionDirOf, type EngineRecord } from "./engine-store";
import { NATIVE_BUNDLE } from "./native-assets";
import { NativeLibError } from "./native";

declare global { var __APPLIANCE_ENGINE_BINS__: Record<string, string> | undefined }

/**
 * The reserved control variable (config/load.ts RESERVED_ENV) through which serve hands its GPU preflight child the
 * built engine it chose and verified: its engine.dir. Set only in that child's environment (gpu.ts preflightGpu);
 * the child verifies the engine again before loading it. Never a setting.
 */
export const PREFLIGHT_ENGINE_ENV = "APPLIANCE_PREFLIGHT_ENGINE";

/**
 * The engine.dir of the built engine selectEngine verified in this process, if any (for the GPU preflight child):
 * read from what node-llama-cpp is pointed at, <engine.dir>/<version>, so there is one record of the choice.
 */
export function builtEngineDir(): string | undefined {
  const versionDir = Object.values(globalThis.__APPLIANCE_ENGINE_BINS__ ?? {})[0];
  return versionDir && path.dirname(versionDir);
}

/** The engine serve runs on, for the start log (and where to find it). */
export interface EngineChoice {
  engine: "embedded" | "built";
  why: string;
  dir?: string;
  builds?: { folder: string; gpu: EngineRecord["gpu"]; portable: boolean; commit: string; cmakeOptions: Record<string, string>; builtAt: string; files: number }[];
  omp?: Record<string, string>;
}

/**
 * Chooses and verifies the engine. `built` without a built engine, or a built engine that fails its check (under
 * `auto` too: a tampered engine is not silently replaced), throws NativeLibError. `nlcVersion`: this binary's
 * node-llama-cpp version (null from source, where node-llama-cpp finds its own packages and no engine is chosen).
 */
export function selectEngine(cfg: { use: "auto" | "embedded" | "built"; dir: string }, nlcVersion: string | null = ENGINE_NLC_VERSION): EngineChoice {
  if (cfg.use === "embedded") return { engine: "embedded", why: "engine.use is embedded" };
  if (!nlcVersion) {
    if (cfg.use === "built") throw new NativeLibError("engine.use is built, but only the compiled binary can load a built engine");
    return { engine: "embedded", why: "running from source" };
  }
  const versionDir = versionDirOf(cfg.dir, nlcVersion);
  if (!holdsEngine(versionDir)) {
    if (cfg.use === "built") throw new NativeLibError(`engine.use is built, but no engine was built for node-llama-cpp ${nlcVersion} in ${cfg.dir} (run: sudo appliance engine build)`);
    return { engine: "embedded", why: `no built engine in ${versionDir}` };
  }
  const records = verifyEngineDir(versionDir);
  globalThis.__APPLIANCE_ENGINE_BINS__ = Object.fromEntries(records.map((r) => [`@node-llama-cpp/${r.folder}`, versionDir]));
  // The GPU preflight child learns this choice from PREFLIGHT_ENGINE_ENV (gpu.ts, builtEngineDir), never from the
  // operator's APPLIANCE_ENGINE__* settings: process.env keeps meaning what the operator set.
  // libgomp reads its settings once, when mapped: before getLlama loads the addon (engine-build-env.ts).
  const omp = records.some((r) => r.openmp) ? applyOmpEnv() : undefined;
  return {
    engine: "built", why: cfg.use === "built" ? "engine.use is built" : "a built engine is present", dir: versionDir,
    builds: records.map((r) => ({ folder: r.folder, gpu: r.gpu, portable: r.portable, commit: r.commit, cmakeOptions: r.cmakeOptions, builtAt: r.builtAt, files: Object.keys(r.files).length })),
    ...(omp && { omp }),
  };
}

/** Which engine runs, without paths (GET /health with auth off, /ready, appliance_engine_info): see engineInfo. */
export interface EngineInfo {
  kind: "built" | "embedded";
  /** node-llama-cpp's folder of the loaded backend (linux-x64, linux-x64-cuda, mac-arm64-metal …). */
  folder: string;
  /** node-llama-cpp's version: built engines live in <engine.dir>/<version>/<folder>/, the embedded ones are its prebuilt packages. */
  version: string;
}

/** node-llama-cpp's version from source (the compiled binary has ENGINE_NLC_VERSION). */
function sourceNlcVersion(): string {
  try { return (require("node-llama-cpp/package.json") as { version: string }).version; } catch { return "unknown"; }
}

/**
 * Which engine serves `backend` (the loaded Llama's gpu, or "cpu"): a built one when selectEngine verified a build
 * of that folder, else the embedded (prebuilt) libraries.
 */
export function engineInfo(backend: string): EngineInfo {
  const folder = engineFolder(backend === "cuda" || backend === "vulkan" || backend === "metal" ? backend : false);
  return { kind: builtEngineHas(folder) ? "built" : "embedded", folder, version: ENGINE_NLC_VERSION ?? sourceNlcVersion() };
}

/** Whether a verified built engine serves this GPU backend (gpu.ts: a build may carry no embedded GPU libraries). */
export const builtEngineHas = (folder: string) => Boolean(globalThis.__APPLIANCE_ENGINE_BINS__?.[`@node-llama-cpp/${folder}`]);

/**
 * Why an installed service would run on node-llama-cpp's prebuilt libraries (no OpenMP) where an engine built on
 * the machine would serve faster (README, Engine build), or undefined when not: another OS, an engine already built
 * under `root`, `engine.use` set, a binary whose embedded engine is already our own build, or running from source.
 */
export function prebuiltEngineNote(cfg: { use: "auto" | "embedded" | "built"; dir: string }, root = "/",
  platform: string = process.platform, nlcVersion: string | null = ENGINE_NLC_VERSION, bundle = NATIVE_BUNDLE): string | undefined {
  if (platform !== "linux" || cfg.use !== "auto" || !nlcVersion || !bundle || bundle.engine?.kind === "local") return undefined;
  if (holdsEngine(versionDirOf(path.join(root, cfg.dir), nlcVersion))) return undefined;
  return "engine: node-llama-cpp's prebuilt llama.cpp libraries (no OpenMP, generic CPU variants: prompts and concurrent streams "
    + "well below llama-server's speed). For an engine built for this CPU: sudo appliance engine build (needs cmake, a C and a C++ "
    + "compiler, ninja or make; takes minutes), then restart the service (README: Engine build; Benchmarks).";
}
