#!/usr/bin/env bun
/**
 * bun scripts/peer-build.ts            build (or reuse) the peer binaries and print their paths as JSON
 *
 * The benchmark's peer: llama-server and llama-bench built with cmake from the exact llama.cpp source that
 * node-llama-cpp ships (node_modules/node-llama-cpp/llama/gitRelease.bundle), the way llama.cpp's own docs build
 * them: Release, GGML_NATIVE=ON (this CPU's features), OpenMP on, CPU only, only those two targets.
 *
 * The build takes minutes on a small machine, so it is cached OUTSIDE the repo, keyed by the bundle's sha256:
 * ~/.cache/appliance/peer/<sha256>/ (or $APPLIANCE_PEER_CACHE/<sha256>/). A finished build leaves a `done.json`
 * stamp; a second caller waits on a lock file instead of building twice. Nothing is downloaded: the source comes
 * from the bundle (git clone of a local bundle file), the compiler and cmake from the machine. When one of them is
 * missing, peerBuild() returns { skip: reason } instead of throwing, so callers (benchmarks, tests) can say why.
 * The compile runs under `nice -n 19` so it does not starve whatever else the machine is doing.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { takeBuildLock } from "./build-lock";

/** Paths of the built peer binaries. */
export interface PeerBinaries { llamaServer: string; llamaBench: string; sourceSha256: string; dir: string }
/** Why no peer build is available (missing cmake, compiler, git or bundle; or a failed build). */
export interface PeerSkip { skip: string }

const repoRoot = path.resolve(import.meta.dir, "..");
/** The llama.cpp source node-llama-cpp ships, as a git bundle. */
export const bundlePath = path.join(repoRoot, "node_modules/node-llama-cpp/llama/gitRelease.bundle");

function which(cmd: string): string | null {
  return Bun.which(cmd);
}

async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function run(cmd: string[], opts: { cwd?: string; logFile: string }): Promise<void> {
  const fd = fs.openSync(opts.logFile, "a");
  fs.writeSync(fd, `\n$ ${cmd.join(" ")}\n`);
  const p = Bun.spawn(cmd, { cwd: opts.cwd, stdout: fd, stderr: fd, stdin: "ignore" });
  const rc = await p.exited;
  fs.closeSync(fd);
  if (rc !== 0) throw new Error(`${cmd.slice(0, 4).join(" ")} … exited ${rc} (log: ${opts.logFile})`);
}

function stamped(dir: string): PeerBinaries | null {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, "done.json"), "utf8")) as PeerBinaries;
    if (fs.existsSync(s.llamaServer) && fs.existsSync(s.llamaBench)) return s;
  } catch { /* not built yet */ }
  return null;
}

/**
 * Build llama-server and llama-bench from node-llama-cpp's bundled llama.cpp source, or reuse the cached build.
 * Resolves to the binaries' paths, or to { skip } naming what is missing. Never downloads anything.
 */
export async function peerBuild(opts: { log?: (line: string) => void; cacheRoot?: string } = {}): Promise<PeerBinaries | PeerSkip> {
  const log = opts.log ?? ((l: string) => console.error(l));
  if (!fs.existsSync(bundlePath)) return { skip: `no llama.cpp source bundle at ${bundlePath}` };
  for (const tool of ["cmake", "git", "c++", "cc"]) if (!which(tool)) return { skip: `${tool} not found (Debian: apt-get install cmake g++ git)` };
  const sha = await sha256File(bundlePath);
  const cacheRoot = opts.cacheRoot ?? process.env.APPLIANCE_PEER_CACHE ?? path.join(os.homedir(), ".cache/appliance/peer");
  const dir = path.join(cacheRoot, sha);
  const done = stamped(dir);
  if (done) return done;
  fs.mkdirSync(dir, { recursive: true });
  const taken = await takeBuildLock(dir, stamped, "peer build", log);
  if ("done" in taken) return taken.done;
  const { lock } = taken;
  try {
    const src = path.join(dir, "src"), build = path.join(dir, "build"), logFile = path.join(dir, "build.log");
    if (!fs.existsSync(path.join(src, "CMakeLists.txt"))) {
      fs.rmSync(src, { recursive: true, force: true });
      log(`peer build: cloning ${bundlePath} → ${src}`);
      await run(["git", "clone", "--quiet", bundlePath, src], { logFile });
    }
    const jobs = String(Math.max(1, os.availableParallelism()));
    log(`peer build: cmake (Release, GGML_NATIVE=ON, GGML_OPENMP=ON, CPU only), log in ${logFile}; takes minutes`);
    await run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DGGML_OPENMP=ON",
      "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
      "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON", "-DGGML_CUDA=OFF", "-DGGML_VULKAN=OFF", "-DGGML_METAL=OFF"], { logFile });
    // Refuse a build without OpenMP: the whole point of the peer is llama.cpp's default (OpenMP) threading.
    const cache = fs.readFileSync(path.join(build, "CMakeCache.txt"), "utf8");
    if (!/OpenMP_C_FLAGS:[A-Z]+=-fopenmp/.test(cache) && !/GGML_OPENMP_ENABLED/.test(cache)) log("peer build: warning: OpenMP not found by cmake");
    await run(["nice", "-n", "19", "cmake", "--build", build, "--config", "Release", "-j", jobs, "--target", "llama-server", "llama-bench"], { logFile });
    const bin = (name: string) => [path.join(build, "bin", name), path.join(build, "bin/Release", name)].find((p) => fs.existsSync(p));
    const llamaServer = bin("llama-server"), llamaBench = bin("llama-bench");
    if (!llamaServer || !llamaBench) return { skip: `peer build finished without llama-server/llama-bench (log: ${logFile})` };
    const result: PeerBinaries = { llamaServer, llamaBench, sourceSha256: sha, dir };
    fs.writeFileSync(path.join(dir, "done.json"), JSON.stringify(result, null, 2));
    log(`peer build: done (${dir})`);
    return result;
  } catch (e) {
    return { skip: `peer build failed: ${(e as Error).message}` };
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

if (import.meta.main) {
  const r = await peerBuild();
  console.log(JSON.stringify(r, null, 2));
  if ("skip" in r) process.exit(1);
}
