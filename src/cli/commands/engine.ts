/**
 * appliance engine build [--gpu cuda|vulkan] [--cuda-arch LIST] [--portable] [--jobs N]   compile our own llama.cpp engine here
 * appliance engine status [--json]                                      the built engines and their check
 *
 * build: node-llama-cpp's addon and the llama.cpp source it pins, carried inside this binary, compiled with cmake
 * and the system compiler (OpenMP, this CPU's features; --portable: every CPU variant; --gpu: CUDA or Vulkan on
 * top), then installed root-owned and read-only in <engine.dir>/<node-llama-cpp version>/<folder>/ with every
 * file's sha256 recorded; serve verifies them at every start and loads them instead of the embedded libraries
 * (engine.use auto|built). Needs root, cmake, a C/C++ compiler and ninja or make; nothing is downloaded. The
 * compile runs at nice 19 on every usable CPU in a temp dir removed afterwards.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { usableCpus } from "../../engine/cpu-budget";
import { buildLogOf, compileEngine, engineFolder, outdatedEngineBuild } from "../../engine/engine-compile";
import { ENGINE_NLC_VERSION, ENGINE_SOURCES } from "../../engine/engine-sources";
import { holdsEngine, inspectEngineDir, installEngine, versionDirOf } from "../../engine/engine-store";
import { listEngineDir } from "../../engine/engine-versions";
import { EngineBuildFailure } from "../../engine/engine-failure";
import { findBuildTools, missingToolsMessage, type EngineGpu } from "../../engine/engine-tools";
import { EXIT, parseWithConfig, UsageError, unknownSubcommand, type Command } from "../command";

const USAGE = "appliance engine build [--gpu cuda|vulkan] [--cuda-arch LIST] [--portable] [--jobs N] [--config FILE]\n       appliance engine status [--json] [--config FILE]";

export const engine: Command = {
  name: "engine",
  summary: "Build our own llama.cpp engine on this machine (engine build), or show the built one (engine status)",
  usage: USAGE,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === "build") return build(rest);
    if (sub === "status") return status(rest);
    throw unknownSubcommand("engine", sub, ["build", "status"]); // main prints the usage after it
  },
};

async function build(argv: string[]): Promise<number> {
  const { config, values } = parseWithConfig(argv, { portable: { type: "boolean" }, jobs: { type: "string" }, "cuda-arch": { type: "string" } });
  const gpuFlag = values.gpu as string | undefined;
  if (gpuFlag !== undefined && !["cuda", "vulkan", "off"].includes(gpuFlag)) throw new UsageError("engine build: --gpu is cuda or vulkan (default: a CPU engine)");
  const gpu: EngineGpu = gpuFlag === "cuda" || gpuFlag === "vulkan" ? gpuFlag : false;
  const cudaArch = cudaArchitectures(values["cuda-arch"] as string | undefined, gpu);
  const jobs = values.jobs === undefined ? usableCpus().cpus : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError("engine build: --jobs is a positive whole number");
  if (!ENGINE_SOURCES) {
    console.error("appliance engine build: this binary carries no engine sources (it runs from source, or was built where git was missing); use a release binary.");
    return EXIT.FAIL;
  }
  if (process.platform !== "linux") {
    console.error(`appliance engine build: engine builds are wired for Linux only (this is ${process.platform}-${process.arch}).`);
    return EXIT.FAIL;
  }
  // Root first: a user without cmake would otherwise be told to install tools, then still be refused.
  if (process.geteuid?.() !== 0) {
    console.error(`appliance engine build: run it as root (sudo appliance engine build): the engine is installed root-owned and read-only in ${config.engine.dir}, so the service account cannot change what it loads. Nothing was written.`);
    return EXIT.FAIL;
  }
  const found = findBuildTools(gpu);
  if ("missing" in found) { console.error(missingToolsMessage(found.missing)); return EXIT.TOOLS_MISSING; }
  try { os.setPriority(19); } catch { /* lowering our own priority cannot fail as root; if it does, build anyway */ }
  const log = (line: string) => console.error(line);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-engine-build-"));
  try {
    const compiled = await compileEngine(ENGINE_SOURCES, { gpu, portable: !!values.portable, cudaArch, jobs, tools: found.tools, workDir, log });
    // Locked against another build's install; verified as a start will (root writes the hash cache the starts then
    // read); staging dirs killed installs left removed.
    const { record, removed } = installEngine(config.engine.dir, compiled.dir, {
      folder: compiled.folder, nlcVersion: ENGINE_SOURCES.nlcVersion, release: ENGINE_SOURCES.release, commit: ENGINE_SOURCES.commit,
      gpu, portable: !!values.portable, openmp: compiled.openmp, cmakeOptions: compiled.cmakeOptions,
      compiler: compiled.compiler, cmake: compiled.cmake, seconds: compiled.seconds, builtAt: new Date().toISOString(), patches: compiled.patches,
    }, { verify: true, onWait: (lock) => log(`engine build: another engine build is installing (${lock}); waiting for it`) });
    const versionDir = versionDirOf(config.engine.dir, ENGINE_SOURCES.nlcVersion);
    for (const p of removed) log(`engine build: removed ${p} (an interrupted install's staging dir)`);
    log(`engine build: done in ${compiled.seconds} s: ${path.join(versionDir, record.folder)} (${Object.keys(record.files).length} files, sha256 in ${record.folder}.json)`);
    log(config.engine.use === "embedded" ? "engine build: engine.use is embedded: set it to auto or built to use this engine"
      : "engine build: serve loads it from its next start (a running service: systemctl restart appliance)");
    // The unit denies sched_setaffinity (@resources), so its OpenMP threads stay unbound unless the operator allows it.
    if (compiled.openmp) log("engine build: under the installed systemd unit its threads run unbound (sched_setaffinity is denied); the README's \"Engine build\" section has the drop-in that allows binding, and what it measured");
    return EXIT.OK;
  } catch (e) {
    if (e instanceof EngineBuildFailure && e.missing.length) {
      console.error([missingToolsMessage(e.missing), ...e.reasons.map((r) => `Also: ${r}.`)].join("\n"));
      return EXIT.TOOLS_MISSING;
    }
    console.error(`appliance engine build: ${(e as Error).message}`);
    // A failure no known reason explains: its whole log outlives the work dir (the message above has only its tail).
    const log = buildLogOf(workDir);
    if (!(e instanceof EngineBuildFailure) && fs.existsSync(log)) {
      const kept = path.join(os.tmpdir(), `appliance-engine-build-${new Date().toISOString().replace(/[:.]/g, "-")}.log`);
      try {
        // Root writing into a shared /tmp: a new file only (wx: no file or link already there is followed), 0600 from the start.
        fs.writeFileSync(kept, fs.readFileSync(log), { mode: 0o600, flag: "wx" });
        console.error(`appliance engine build: the whole build log is kept in ${kept}`);
      } catch (err) {
        console.error(`appliance engine build: the build log could not be kept (${(err as Error).message})`);
      }
    }
    return EXIT.FAIL;
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

/**
 * --cuda-arch: cmake's CUDA_ARCHITECTURES ("90", "80,90", "86-real", "all-major"), for a build where no GPU is visible.
 * Without it llama.cpp compiles for the GPUs cmake sees (native: machine code for them, no PTX left for the driver to
 * JIT); with --portable (GGML_NATIVE off) for llama.cpp's own list of architectures.
 */
function cudaArchitectures(flag: string | undefined, gpu: EngineGpu): string | undefined {
  if (flag === undefined) return undefined;
  if (gpu !== "cuda") throw new UsageError("engine build: --cuda-arch goes with --gpu cuda");
  // What cmake takes (CMakeDetermineCUDACompiler): numbers with an optional "a" and -real/-virtual, or all / all-major.
  if (!/^(\d{2,3}a?(-real|-virtual)?([,;]\d{2,3}a?(-real|-virtual)?)*|all|all-major)$/.test(flag)) {
    throw new UsageError("engine build: --cuda-arch is a list of CUDA architectures: 90, or 80,90 (90a, 86-real, 90-virtual, all-major also)");
  }
  return flag.replaceAll(",", ";");
}

async function status(argv: string[]): Promise<number> {
  const { config, values } = parseWithConfig(argv, { json: { type: "boolean" } });
  const nlcVersion = ENGINE_NLC_VERSION ?? ENGINE_SOURCES?.nlcVersion;
  const versionDir = nlcVersion ? versionDirOf(config.engine.dir, nlcVersion) : null;
  const out: Record<string, unknown> = { use: config.engine.use, dir: versionDir, sources: ENGINE_SOURCES && { release: ENGINE_SOURCES.release, commit: ENGINE_SOURCES.commit, bytes: ENGINE_SOURCES.bytes } };
  let ok = true;
  if (!versionDir || !holdsEngine(versionDir)) out.built = [];
  else {
    const checked = inspectEngineDir(versionDir);
    out.built = checked.records.map((r) => {
      const outdated = outdatedEngineBuild(r.cmakeOptions);
      return { folder: r.folder, gpu: r.gpu, portable: r.portable, openmp: r.openmp, commit: r.commit, builtAt: r.builtAt, files: Object.keys(r.files).length, cmakeOptions: r.cmakeOptions, ...(outdated && { outdated }) };
    });
    out.problems = checked.problems;
    ok = checked.problems.length === 0;
  }
  // Everything in engine.dir: this binary's version dir and any other (old builds, or an operator's own files).
  const entries = listEngineDir(config.engine.dir);
  out.entries = entries.map((e) => ({ ...e, current: e.name === nlcVersion }));
  if (values.json) console.log(JSON.stringify({ ok, ...out }, null, 2));
  else {
    const built = out.built as { folder: string; builtAt: string; outdated?: string }[];
    console.log(built.length ? `built engine(s) in ${versionDir}: ${built.map((b) => `${b.folder} (${b.builtAt})`).join(", ")}` : `no built engine${versionDir ? ` in ${versionDir}` : ""}; serve uses the embedded libraries (build one: sudo appliance engine build)`);
    for (const b of built) if (b.outdated) console.log(`  note: ${b.folder} was ${b.outdated}`);
    for (const p of (out.problems as string[] | undefined) ?? []) console.log(`  problem: ${p}`);
    if (entries.length) console.log(`in ${config.engine.dir}:`);
    for (const e of entries) {
      const what = !e.ours ? `not an engine build (${e.why}); left alone` : !e.folders.length ? `${e.why}; the next engine build removes it`
        : e.name === nlcVersion ? `built engine(s) ${e.folders.join(", ")}` : `built engine(s) ${e.folders.join(", ")} for another node-llama-cpp version (not loaded by this binary; kept for a rollback's binary; uninstall removes it)`;
      console.log(`  ${e.name}${e.name === nlcVersion ? " (this binary's)" : ""}: ${what}`);
    }
    if (ENGINE_SOURCES) console.log(`sources carried: llama.cpp ${ENGINE_SOURCES.release} (${ENGINE_SOURCES.commit.slice(0, 12)}), folder for a CPU build: ${engineFolder(false)}`);
  }
  return ok ? EXIT.OK : EXIT.FAIL;
}
