/**
 * In the compiled binary the llama.cpp libraries must exist as real files before dlopen, and ggml
 * dlopens EVERY libggml-cpu-*.so it finds in their folder (the build puts the CPU variants in its fallback/
 * subfolder, which node-llama-cpp scans the same way; engine/cpu-backend.ts). So the folder must hold exactly the
 * embedded files, each matching the sha256 recorded at build time, checked on every start:
 *
 * - Installed: the installer unpacks them once into a root-owned, read-only system dir
 *   (SYSTEM_NATIVE_DIR/<version>, see installNative); the service account cannot write any file it
 *   loads. A system dir that is writable by others, or holds anything unlisted, or a wrong digest,
 *   stops the start: that is tampering, not something to repair.
 * - Per-user (dev) run: <stateDir>/native/<version>, 0700, owned by the running user; anything
 *   unlisted is removed and any mismatch rewritten before a single library is loaded.
 */
import fs from "node:fs";
import path from "node:path";
import { writeFilesAtomic, type AtomicFile } from "../util/atomic-write";
import { withFileLock } from "../util/file-lock";
import { DigestCache } from "../util/digest-cache";
import { dirsAbove, openPlainFile } from "../util/fs";
import { sha256Bytes, sha256FdSync } from "../util/sha256";
import { applyOmpEnv } from "./engine-build-env";
import { NATIVE_BUNDLE, type NativeBundle } from "./native-assets";

export class NativeLibError extends Error {}

declare global { var __APPLIANCE_BINS_DIR__: string | undefined }

/** Where `install` puts the libraries (root-owned, read-only); used instead of the state dir when present. */
export const SYSTEM_NATIVE_DIR = "/usr/local/lib/appliance/native";

/** omp: the OpenMP settings native code will read, for an OpenMP engine (engine-build-env.ts). */
export interface NativeResult { dir: string; files: number; shared: boolean; removed: string[]; omp?: Record<string, string> }

/**
 * In a version dir: the libraries' sha256 by (dev, inode, size, mtime, ctime) (util/digest-cache.ts), so a start
 * need not re-read them all. Trusted only when it and the libraries are root-owned and writable only by root, and
 * written only by root (install, update, a root serve); the daily verify still hashes every file.
 */
export const NATIVE_HASH_CACHE = ".sha256-cache.json";

/**
 * The digest of a plain file (never through a symlink); undefined if missing or not a plain file. With a cache:
 * the remembered digest of exactly these bytes, else hashed and remembered (`ownCopy`: this process just wrote it).
 */
export function digestOf(file: string, cache?: DigestCache, ownCopy = false): string | undefined {
  if (cache) return digestWith(file, cache, { ownCopy })?.digest;
  let fd: number;
  try { fd = openPlainFile(file); } catch { return undefined; }
  try { return sha256FdSync(fd); } finally { fs.closeSync(fd); }
}

/**
 * digestOf with a cache, saying whether the digest came from it. `reuse: false` reads every byte and remembers the
 * digest (a full check run by root refreshing the cache).
 */
export function digestWith(file: string, cache: DigestCache, opts: { ownCopy?: boolean; reuse?: boolean } = {}): { digest: string; cached: boolean } | undefined {
  let fd: number;
  try { fd = openPlainFile(file); } catch { return undefined; }
  try {
    const before = fs.fstatSync(fd, { bigint: true });
    const cached = opts.reuse === false ? undefined : cache.lookup(file, before);
    if (cached) return { digest: cached, cached: true };
    const digest = sha256FdSync(fd);
    cache.remember(file, before, fs.fstatSync(fd, { bigint: true }), digest, opts.ownCopy);
    return { digest, cached: false };
  } finally { fs.closeSync(fd); }
}

/** The hash cache of a root-owned dir (NATIVE_HASH_CACHE); the built engine's dir (engine-store.ts) uses it too. */
export const cacheOf = (root: string) => new DigestCache(path.join(root, NATIVE_HASH_CACHE));

/** Relative path → expected sha256, and every directory that may exist, for a bundle unpacked at a root. */
function expected(bundle: NativeBundle) {
  const files = new Map<string, { sha256: string; src: string }>();
  const dirs = new Set<string>();
  for (const { folder, assets } of bundle.folders) {
    dirs.add(folder);
    for (const a of assets) {
      const rel = path.join(folder, a.name);
      files.set(rel, { sha256: a.sha256, src: a.path });
      for (let d = path.dirname(rel); d !== "." && d !== folder; d = path.dirname(d)) dirs.add(d);
    }
  }
  return { files, dirs };
}

/** Every entry under root that is not part of the bundle (symlinks included, whatever their name). */
export function unlistedEntries(root: string, bundle: NativeBundle): string[] {
  const { files, dirs } = expected(bundle);
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory() && dirs.has(r)) walk(r);
      else if (!(e.isFile() && (files.has(r) || r === NATIVE_HASH_CACHE))) out.push(r);
    }
  };
  if (fs.existsSync(root)) walk("");
  return out.sort();
}

/** Problems with a native dir: unlisted entries, missing files, wrong digests (exact contents). `cache`: see NATIVE_HASH_CACHE. */
export function checkNativeDir(root: string, bundle: NativeBundle, cache?: DigestCache): string[] {
  const problems = unlistedEntries(root, bundle).map((r) => `${path.join(root, r)} is not one of the embedded libraries`);
  for (const [rel, { sha256 }] of expected(bundle).files) {
    const actual = digestOf(path.join(root, rel), cache);
    if (actual !== sha256) problems.push(`${path.join(root, rel)}: ${actual ? `sha256 ${actual} does not match the embedded ${sha256}` : "missing or not a plain file"}`);
  }
  return problems;
}

/**
 * A system dir, everything in it and every dir above it must be root-owned and not writable by group or others. `top`:
 * the highest dir above it checked (an install under `--root DIR` stages the system's dirs inside DIR, in /tmp say).
 */
export function checkRootOwned(dir: string, top = "/") {
  const check = (p: string) => {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw new NativeLibError(`${p} must be root-owned and not writable by group or others (uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`);
    }
    return st;
  };
  for (const d of dirsAbove(dir, top)) check(d);
  const walk = (p: string) => { if (check(p).isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e)); };
  walk(dir);
}

function privateDir(dir: string) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new NativeLibError(`${dir} is not a directory: refusing to load libraries from it`);
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
    throw new NativeLibError(`${dir} is owned by uid ${st.uid}, not by this user: refusing to load libraries from it`);
  }
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}

/** Writes the bundle under root: exact contents (unlisted entries removed), each file checked after writing. */
async function unpack(root: string, bundle: NativeBundle, mkdir: (d: string) => void, fileMode: number, owner: { uid: number; gid: number } | null | undefined) {
  mkdir(root);
  const removed = unlistedEntries(root, bundle);
  for (const r of removed) fs.rmSync(path.join(root, r), { recursive: true, force: true });
  // A dir only its owner can write (0700 per user, root's 0755 system dir): what it wrote itself is its own copy.
  const cache = cacheOf(root);
  let files = 0;
  const writes: (AtomicFile & { sha256: string })[] = [];
  for (const [rel, { sha256, src }] of expected(bundle).files) {
    const target = path.join(root, rel);
    for (let d = path.dirname(rel); ; d = path.dirname(d)) { mkdir(path.join(root, d)); if (!d.includes(path.sep)) break; }
    if (digestOf(target, cache) !== sha256) {
      // The bytes are checked once, in memory, and those very bytes written: reading each file back to hash it again
      // doubled the hashing of a first start (scripts/bench-cold.ts, state removed).
      const data = await Bun.file(src).bytes();
      const actual = sha256Bytes(data);
      if (actual !== sha256) throw new NativeLibError(`${src}: sha256 ${actual} does not match the embedded ${sha256} (the binary is damaged)`);
      fs.rmSync(target, { recursive: true, force: true });
      writes.push({ file: target, data, opts: { mode: fileMode, owner }, sha256 });
    }
    files++;
  }
  writeFilesAtomic(writes);
  // Remembered as this process's own copies (root's dir only: DigestCache) with the digests checked above.
  for (const { file, sha256 } of writes) {
    const st = fs.lstatSync(file, { bigint: true });
    cache.remember(file, st, st, sha256, true);
  }
  cache.save();
  return { files, removed: removed.map((r) => path.join(root, r)) };
}

/** What a process waiting for another's lock on a state dir's native libraries says (serve's log, models add's stderr). */
export const NATIVE_LOCK_WAIT = "waiting for another appliance process (models add, serve) to finish with the native libraries in this state dir";

/** Unpacks (per user) or checks (system dir) the embedded libraries and points node-llama-cpp at them; null from source. */
export async function prepareNative(stateDir: string, bundle = NATIVE_BUNDLE as NativeBundle | null,
  systemDir = SYSTEM_NATIVE_DIR, opts: { onWait?: (lockFile: string) => void } = {}): Promise<NativeResult | null> {
  if (!bundle) return null;
  // Before any library loads: libgomp reads its settings once, when it is mapped.
  const omp = bundle.engine?.openmp ? { omp: applyOmpEnv() } : {};
  const system = path.join(systemDir, bundle.version);
  if (fs.existsSync(system)) {
    checkRootOwned(system);
    const cache = cacheOf(system);
    const problems = checkNativeDir(system, bundle, cache);
    if (problems.length) throw new NativeLibError(`the installed native libraries do not match this binary: ${problems.join("; ")}`);
    cache.save(); // root only; the service account (and the unit's read-only /usr) never writes it
    globalThis.__APPLIANCE_BINS_DIR__ = system;
    return { dir: system, files: expected(bundle).files.size, shared: true, removed: [], ...omp };
  }
  const root = path.join(stateDir, "native", bundle.version);
  privateDir(path.join(stateDir, "native"));
  // One writer at a time (<stateDir>/native.lock, outside native/, whose entries are version dirs): two processes
  // unpacking into one dir removed each other's temp files as unlisted entries (two `models add` at once on a new
  // state dir, whose trial runs unpack here: serve-prep.ts). `onWait`: told when another process holds the lock, so a
  // start that waits for it (a holder stopped or hung) says why it does not go on.
  const { files, removed } = await withFileLock(path.join(stateDir, "native"), () => unpack(root, bundle, privateDir, 0o500, null), { onWait: opts.onWait });
  globalThis.__APPLIANCE_BINS_DIR__ = root;
  return { dir: root, files, shared: false, removed, ...omp };
}

/** For the installer (as root): the system dir, root-owned, dirs 0755 and files 0444, exact contents. */
export async function installNative(systemDir = SYSTEM_NATIVE_DIR, bundle = NATIVE_BUNDLE as NativeBundle | null) {
  if (!bundle) return null;
  const root = path.join(systemDir, bundle.version);
  const mkdir = (d: string) => { fs.mkdirSync(d, { recursive: true, mode: 0o755 }); fs.chmodSync(d, 0o755); };
  const done = await unpack(root, bundle, mkdir, 0o444, { uid: 0, gid: 0 });
  // unpack rewrites only files whose bytes differ: an owner or mode changed since (a `chmod 0777` on a folder) stayed,
  // and serve refused the dir at every start (live-service run). Only what differs is set: a chmod moves ctime, which
  // the digest cache reads, so touching every file made the next start hash them all. The cache file itself is 0644.
  const own = (p: string, st: fs.Stats, mode: number) => {
    if (st.uid !== 0 || st.gid !== 0) fs.lchownSync(p, 0, 0);
    if ((st.mode & 0o7777) !== mode) fs.chmodSync(p, mode);
  };
  own(systemDir, fs.lstatSync(systemDir), 0o755);
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    if (!st.isDirectory()) return own(p, st, path.basename(p) === NATIVE_HASH_CACHE ? 0o644 : 0o444);
    own(p, st, 0o755);
    for (const e of fs.readdirSync(p)) walk(path.join(p, e));
  };
  walk(root);
  return { dir: root, ...done };
}
