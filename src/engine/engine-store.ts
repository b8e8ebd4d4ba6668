/**
 * Where `appliance engine build` installs an engine and how every start checks it, under the trust rules of the
 * installed native libraries (native.ts): <engine dir>/<node-llama-cpp version>/ holds, per build, node-llama-cpp's
 * folder (linux-x64, linux-x64-cuda …) and <folder>.json, its record: every file's sha256 and how it was built.
 * The version dir, everything in it and every dir above it must be root-owned and not writable by group or others;
 * its exact contents are the listed files (plus the root-written hash cache), each with its recorded digest. The
 * version in the path ties a build to the node-llama-cpp JS it was built for: another binary version never loads it.
 */
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-write";
import type { DigestCache } from "../util/digest-cache";
import { withFileLockSync } from "../util/file-lock";
import { fsyncDir } from "../util/fs";
import { readRecord, RECORD, type EngineRecord } from "./engine-record";
import { INSTALL_LOCK, pruneStaging } from "./engine-versions";
import { cacheOf, checkRootOwned, digestOf, digestWith, NATIVE_HASH_CACHE, NativeLibError } from "./native";

export type { EngineRecord } from "./engine-record";

/**
 * Whether a version dir holds anything of a built engine: it exists with an entry other than the hash cache. An
 * empty one (left by an install that stopped before its first file) is no engine: under `auto` serve runs the
 * embedded libraries, and verify and `engine status` say the same. Anything in it is checked in full.
 */
export function holdsEngine(versionDir: string): boolean {
  try {
    return fs.readdirSync(versionDir).some((name) => name !== NATIVE_HASH_CACHE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}

/** The dir a binary with this node-llama-cpp version loads built engines from. */
export const versionDirOf = (engineDir: string, nlcVersion: string) => path.join(engineDir, nlcVersion);

/** How checkEngineDir gets each file's digest. */
export interface DigestSource {
  /** Take an unchanged file's sha256 from this cache (its trust rules apply), else hash and remember it. */
  cache?: DigestCache;
  /** With `cache`: root just wrote the files (see verifyEngineDir). */
  ownCopy?: boolean;
  /** Read every byte, and remember the digests here (written only by root: a manual `sudo appliance verify`). */
  refresh?: DigestCache;
}

/**
 * Problems with a version dir (unlisted entries, missing files, wrong digests) and the records it holds;
 * `fromCache` of the `files` checked took their sha256 from the hash cache.
 */
export function checkEngineDir(versionDir: string, how: DigestSource = {}): { records: EngineRecord[]; problems: string[]; files: number; fromCache: number } {
  const records: EngineRecord[] = [], problems: string[] = [];
  let files = 0, fromCache = 0;
  const entries = fs.readdirSync(versionDir, { withFileTypes: true });
  const folders = new Set<string>();
  for (const e of entries) {
    const m = RECORD.exec(e.name);
    if (!m || !e.isFile()) continue;
    try {
      const r = readRecord(path.join(versionDir, e.name));
      if (r.folder !== m[1]) { problems.push(`${path.join(versionDir, e.name)} describes folder ${r.folder}`); continue; }
      records.push(r); folders.add(r.folder);
    } catch (err) { problems.push(`${path.join(versionDir, e.name)}: unreadable engine record (${(err as Error).message})`); }
  }
  for (const e of entries) {
    const listed = (e.isFile() && (RECORD.test(e.name) || e.name === NATIVE_HASH_CACHE)) || (e.isDirectory() && folders.has(e.name));
    if (!listed) problems.push(`${path.join(versionDir, e.name)} is not part of a built engine`);
  }
  for (const r of records) {
    const dir = path.join(versionDir, r.folder);
    if (!fs.existsSync(dir)) { problems.push(`${dir}: missing`); continue; }
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!(e.isFile() && Object.hasOwn(r.files, e.name))) problems.push(`${path.join(dir, e.name)} is not one of the built engine's files`);
    }
    for (const [name, sha256] of Object.entries(r.files)) {
      const file = path.join(dir, name);
      files++;
      const cache = how.refresh ?? how.cache;
      const got = cache ? digestWith(file, cache, { ownCopy: how.ownCopy, reuse: !how.refresh }) : undefined;
      if (got?.cached) fromCache++;
      const actual = cache ? got?.digest : digestOf(file);
      if (actual !== sha256) problems.push(`${path.join(dir, name)}: ${actual ? `sha256 ${actual} does not match the recorded ${sha256}` : "missing or not a plain file"}`);
    }
  }
  return { records, problems, files, fromCache };
}

/**
 * What verify and `engine status` report on a version dir: whether it is root-owned all the way up (a problem,
 * not a throw) and checkEngineDir's problems. Every file is hashed (and, run as root, the hash cache refreshed with
 * what was read, as verify does for the models), unless `cached`: then a file whose identity and times match the
 * root-written hash cache's entry takes its sha256 from there (the unit's pre-start check, under the cache's trust
 * rules: util/digest-cache.ts), as a start does.
 */
export function inspectEngineDir(versionDir: string, cached = false): { records: EngineRecord[]; problems: string[]; files: number; fromCache: number } {
  const problems: string[] = [];
  try { checkRootOwned(versionDir); } catch (e) { problems.push((e as Error).message); }
  const cache = cacheOf(versionDir);
  const checked = checkEngineDir(versionDir, cached ? { cache } : { refresh: cache });
  if (!problems.length && !checked.problems.length) cache.save(); // root only; a read-only dir (the units' ProtectSystem) is fine
  return { ...checked, problems: [...problems, ...checked.problems] };
}

/**
 * Verifies a version dir for a start: root-owned all the way up, exact contents, every digest (through the hash
 * cache under its trust rules). Throws NativeLibError (the start stops, as for the embedded libraries).
 * `ownCopy`: root just wrote these files (installEngine), so their digests are remembered even inside the cache's
 * racy window (no other writer can hide in it: root-owned dirs all the way up, checked first).
 */
export function verifyEngineDir(versionDir: string, ownCopy = false): EngineRecord[] {
  checkRootOwned(versionDir);
  const cache = cacheOf(versionDir);
  const { records, problems } = checkEngineDir(versionDir, { cache, ownCopy });
  if (problems.length) throw new NativeLibError(`the built engine in ${versionDir} does not match its records: ${problems.join("; ")}`);
  if (!records.length) throw new NativeLibError(`${versionDir} holds no built engine`);
  cache.save(); // root only (a service account never writes it)
  return records;
}

const rootDir = (d: string) => { fs.mkdirSync(d, { recursive: true, mode: 0o755 }); fs.chmodSync(d, 0o755); if (process.geteuid?.() === 0) fs.chownSync(d, 0, 0); };

/** What installEngine did. */
export interface InstallResult {
  record: EngineRecord;
  /** Staging dirs killed installs left, which it removed (builds of other versions are kept: engine-versions.ts). */
  removed: string[];
}

export interface InstallOptions {
  /** Check the result as a start will (root-owned all the way up, every digest) and write the hash cache. */
  verify?: boolean;
  /** Called once when another install holds the lock and this one waits for it. */
  onWait?: (lockFile: string) => void;
}

/**
 * Installs a compiled folder as root, under an exclusive lock on <engine dir>/.install.lock (two `engine build`
 * runs finishing together would otherwise swap each other's folder under the other's record): files 0444 into a
 * staging dir beside the version dir, then the folder is swapped in by rename and its record written last (atomic,
 * fsynced); the previous build of that folder goes. Then, still locked: the optional verify, and staging dirs killed
 * installs left are removed (other versions' builds stay: a rollback's binary loads its own).
 * A start that runs meanwhile sees a folder without its record (or the old record) and stops.
 */
export function installEngine(engineDir: string, compiledDir: string, record: Omit<EngineRecord, "files">, opts: InstallOptions = {}): InstallResult {
  rootDir(engineDir);
  return withFileLockSync(path.join(engineDir, INSTALL_LOCK), () => {
    const full = placeEngine(engineDir, compiledDir, record);
    if (opts.verify) verifyEngineDir(versionDirOf(engineDir, record.nlcVersion), true);
    return { record: full, removed: pruneStaging(engineDir) };
  }, { onWait: opts.onWait });
}

function placeEngine(engineDir: string, compiledDir: string, record: Omit<EngineRecord, "files">): EngineRecord {
  const versionDir = versionDirOf(engineDir, record.nlcVersion);
  rootDir(versionDir);
  const staging = fs.mkdtempSync(path.join(engineDir, ".staging-"));
  try {
    fs.chmodSync(staging, 0o755);
    const folderDir = path.join(staging, record.folder);
    rootDir(folderDir);
    const files: Record<string, string> = {};
    for (const name of fs.readdirSync(compiledDir).sort()) {
      const target = path.join(folderDir, name);
      writeFileAtomic(target, fs.readFileSync(path.join(compiledDir, name)), { mode: 0o444, owner: process.geteuid?.() === 0 ? { uid: 0, gid: 0 } : null });
      files[name] = digestOf(target)!;
    }
    const dest = path.join(versionDir, record.folder);
    if (fs.existsSync(dest)) fs.renameSync(dest, path.join(staging, "previous"));
    fs.renameSync(folderDir, dest);
    const full: EngineRecord = { ...record, files };
    writeFileAtomic(path.join(versionDir, `${record.folder}.json`), JSON.stringify(full, null, 2) + "\n", { mode: 0o444, owner: process.geteuid?.() === 0 ? { uid: 0, gid: 0 } : null });
    fsyncDir(versionDir);
    return full;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
