#!/usr/bin/env bun
/**
 * bun scripts/engine-sources.ts     make (or reuse) the engine source archive `bun run build` embeds; prints it as JSON
 *
 * What `appliance engine build` compiles on the target, with no node_modules, node, npm or git there: one tar
 * (zstd-compressed) holding node-llama-cpp's addon build (llama/CMakeLists.txt, cmake/, addon/), the llama.cpp
 * source it pins (cloned from its git bundle llama/gitRelease.bundle, with node-llama-cpp's patches applied as its
 * own build applies them; only the parts its CMakeLists builds: ggml/, src/, include/, common/, vendor/, cmake/,
 * licenses), and the N-API headers (node-addon-api, node-api-headers: Bun provides those symbols at load time).
 * The addon's AddonContext.cpp carries our decode-thread patch (src/engine/engine-decode-thread.ts: every llama_decode
 * on one native thread, one OpenMP master); a node-llama-cpp whose decode worker no longer matches its anchors stops
 * the archive (and so `bun run build`) with an error naming its version.
 * Layout: llama/…, llama/llama.cpp/…, node-addon-api/…, node-api-headers/include/…
 *
 * Cached outside the repo (~/.cache/appliance/engine-src/<key>.tar.zst, or $APPLIANCE_ENGINE_CACHE/../engine-src),
 * keyed by the bundle's sha256, node-llama-cpp's version and the addon files, so a build after the first adds
 * nothing. Making it needs git (to read the bundle); without git, engineSources() resolves to { skip } and the
 * binary carries no engine sources (`appliance engine build` then says so).
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DECODE_THREAD_FILE, DECODE_THREAD_PATCH, patchDecodeThread } from "../src/engine/engine-decode-thread";

/** The archive made for this tree, as the build embeds it (src/engine/engine-sources.ts). */
export interface SourceArchive {
  file: string; sha256: string; bytes: number;
  /** node-llama-cpp's version (the addon's JS side must match it), its llama.cpp release tag and the source commit. */
  nlcVersion: string; release: string; commit: string; bundleSha256: string; patches: string[];
}

const root = path.resolve(import.meta.dir, "..");
const nm = (p: string) => path.join(root, "node_modules", p);
const LLAMA = nm("node-llama-cpp/llama");
/** Bump when the archive's layout or contents change, so no stale cache is reused. */
const FORMAT = 2;
/** What the addon build reads from llama.cpp (its CMakeLists adds ggml, src, vendor, common; tests/tools are off). */
const LLAMA_CPP_PARTS = ["CMakeLists.txt", "LICENSE", "cmake", "common", "ggml", "include", "licenses", "src", "vendor"];
/** zstd level: 4.3 MB in ~1 s here (level 19: 3.8 MB in 22 s, a cold `bun run build` should stay fast). */
const LEVEL = 12;

function walk(dir: string, rel = ""): string[] {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const r = path.join(rel, e.name);
    return e.isDirectory() ? walk(dir, r) : e.isFile() ? [r] : [];
  });
}

const sha256File = (f: string) => createHash("sha256").update(fs.readFileSync(f)).digest("hex");

/** The key: the source bundle, node-llama-cpp's version and every file of its addon build that goes in. */
function cacheKey(nlcVersion: string, bundleSha256: string): string {
  const h = createHash("sha256").update(JSON.stringify({ FORMAT, nlcVersion, bundleSha256, level: LEVEL }));
  // Our patch's source too: a changed patch makes a new archive.
  h.update(sha256File(path.join(root, "src/engine/engine-decode-thread.ts")));
  for (const dir of ["CMakeLists.txt", "cmake", "addon", "patches"].map((d) => path.join(LLAMA, d))) {
    const files = fs.statSync(dir).isDirectory() ? walk(dir).sort().map((f) => path.join(dir, f)) : [dir];
    for (const f of files) h.update(`${path.relative(LLAMA, f)}\0${sha256File(f)}\0`);
  }
  for (const p of ["node-addon-api", "node-api-headers"]) h.update(JSON.parse(fs.readFileSync(nm(`${p}/package.json`), "utf8")).version);
  return h.digest("hex");
}

/** node-llama-cpp's patches (applyLlamaCppRepoPatches.js): applied unless the source already has the change. */
function applyPatches(repo: string): string[] {
  const applied: string[] = [];
  const patch = path.join(LLAMA, "patches", "PR-22566.diff");
  if (!fs.existsSync(patch)) return applied;
  const loader = fs.readFileSync(path.join(repo, "src", "llama-model-loader.cpp"), "utf8");
  if (loader.includes("n_tensors = gguf_get_n_tensors(metadata);")) return applied;
  const r = Bun.spawnSync(["git", "apply", "--ignore-whitespace", patch], { cwd: repo, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`git apply ${path.basename(patch)} failed: ${r.stderr.toString().trim()}`);
  applied.push(path.basename(patch));
  return applied;
}

/** Makes the archive from the bundle (a temp clone), or returns the cached one. */
export async function engineSources(opts: { cacheRoot?: string; log?: (l: string) => void } = {}): Promise<SourceArchive | { skip: string }> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const bundle = path.join(LLAMA, "gitRelease.bundle");
  if (!fs.existsSync(bundle)) return { skip: `no llama.cpp source bundle at ${bundle}` };
  const nlcVersion = JSON.parse(fs.readFileSync(nm("node-llama-cpp/package.json"), "utf8")).version as string;
  const release = JSON.parse(fs.readFileSync(path.join(LLAMA, "binariesGithubRelease.json"), "utf8")).release as string;
  const bundleSha256 = sha256File(bundle);
  const cacheRoot = opts.cacheRoot ?? (process.env.APPLIANCE_ENGINE_CACHE ? path.join(process.env.APPLIANCE_ENGINE_CACHE, "..", "engine-src") : path.join(os.homedir(), ".cache/appliance/engine-src"));
  const key = cacheKey(nlcVersion, bundleSha256);
  const file = path.join(cacheRoot, `${key}.tar.zst`), stamp = path.join(cacheRoot, `${key}.json`);
  try {
    const s = JSON.parse(fs.readFileSync(stamp, "utf8")) as SourceArchive;
    // Hashed, not only sized: a damaged archive embedded with the stamp's digest would fail every `engine build` on
    // the target ("damaged binary") while verify finds the binary fine. 4.4 MB: milliseconds.
    if (fs.statSync(file).size === s.bytes && sha256File(file) === s.sha256) return s;
  } catch { /* not made yet */ }
  if (!Bun.which("git")) return { skip: "git not found (it reads node-llama-cpp's llama.cpp bundle; Debian: apt-get install git)" };
  const t0 = performance.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-engine-src-"));
  try {
    const repo = path.join(tmp, "llama.cpp");
    const clone = Bun.spawnSync(["git", "clone", "--quiet", bundle, repo], { stderr: "pipe" });
    if (clone.exitCode !== 0) return { skip: `git clone of ${bundle} failed: ${clone.stderr.toString().trim()}` };
    const commit = Bun.spawnSync(["git", "rev-parse", "HEAD"], { cwd: repo }).stdout.toString().trim();
    const patches = applyPatches(repo);
    const entries: Record<string, Uint8Array> = {};
    const add = (base: string, rel: string, as: string) => {
      const abs = path.join(base, rel);
      for (const f of fs.statSync(abs).isDirectory() ? walk(abs).map((x) => path.join(rel, x)) : [rel]) entries[path.join(as, f)] = fs.readFileSync(path.join(base, f));
    };
    for (const p of ["CMakeLists.txt", "cmake", "addon"]) add(LLAMA, p, "llama");
    const addonFile = path.join("llama", DECODE_THREAD_FILE);
    entries[addonFile] = Buffer.from(patchDecodeThread(Buffer.from(entries[addonFile]!).toString("utf8"), nlcVersion));
    patches.push(DECODE_THREAD_PATCH);
    for (const p of LLAMA_CPP_PARTS) add(repo, p, "llama/llama.cpp");
    for (const f of ["napi.h", "napi-inl.h", "napi-inl.deprecated.h"]) add(nm("node-addon-api"), f, "node-addon-api");
    add(nm("node-api-headers"), "include", "node-api-headers");
    const tar = await new Bun.Archive(entries).bytes();
    const zst = Bun.zstdCompressSync(tar, { level: LEVEL });
    fs.mkdirSync(cacheRoot, { recursive: true });
    const result: SourceArchive = { file, sha256: createHash("sha256").update(zst).digest("hex"), bytes: zst.length, nlcVersion, release, commit, bundleSha256, patches };
    fs.writeFileSync(`${file}.tmp`, zst);
    fs.renameSync(`${file}.tmp`, file);
    fs.writeFileSync(stamp, JSON.stringify(result, null, 2));
    log(`engine sources: ${Object.keys(entries).length} files, ${(tar.length / 1e6).toFixed(1)} MB → ${(zst.length / 1e6).toFixed(1)} MB zstd in ${((performance.now() - t0) / 1000).toFixed(1)} s (${file})`);
    return result;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const r = await engineSources();
  console.log(JSON.stringify(r, null, 2));
  if ("skip" in r) process.exit(1);
}
