/**
 * The version dirs in engine.dir (<engine dir>/<node-llama-cpp version>/): which are provably ours, and removing
 * them (uninstall). A binary loads only the dir named by its own node-llama-cpp version; an older one may still be
 * what a rollback starts, so only uninstall removes version dirs. Ours means: a version-like name, a real dir (no link), at least one
 * readable <folder>.json record, and nothing in it but records, their folders and the hash cache. Anything else an
 * operator put in engine.dir is listed and left alone.
 */
import fs from "node:fs";
import path from "node:path";
import { readRecord, RECORD } from "./engine-record";
import { NATIVE_HASH_CACHE } from "./native";

/** The install lock's file in engine.dir (engine-store.ts installEngine; util/file-lock adds ".lock"). */
export const INSTALL_LOCK = ".install";
/** A staging dir an install left when it was killed (installEngine removes its own). */
const STAGING = /^\.staging-/;
const VERSION = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$/;

/** One entry of engine.dir as `engine status` shows it. */
export interface EngineDirEntry {
  name: string;
  /** Provably ours (see the module comment): prune and uninstall may remove it. */
  ours: boolean;
  /** The folders its records describe (ours only). */
  folders: string[];
  /** Why it is not ours. */
  why?: string;
}

/** Whether `dir` (a version dir) is ours, and its folders; `why` when not. */
function inspectVersion(dir: string): { ours: boolean; folders: string[]; why?: string } {
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) return { ours: false, folders: [], why: st.isSymbolicLink() ? "a symbolic link" : "not a directory" };
  if (!VERSION.test(path.basename(dir))) return { ours: false, folders: [], why: "not named like a node-llama-cpp version" };
  const entries = fs.readdirSync(dir, { withFileTypes: true });
  const folders: string[] = [];
  for (const e of entries) {
    const m = RECORD.exec(e.name);
    if (!m || !e.isFile()) continue;
    try { if (readRecord(path.join(dir, e.name)).folder === m[1]) folders.push(m[1]!); } catch { /* not a record: judged below */ }
  }
  if (!folders.length) return { ours: false, folders, why: "no engine record (<folder>.json)" };
  const stranger = entries.find((e) => !(e.isFile() && (e.name === NATIVE_HASH_CACHE || folders.includes(RECORD.exec(e.name)?.[1] ?? "")))
    && !(e.isDirectory() && folders.includes(e.name)));
  return stranger ? { ours: false, folders, why: `holds ${stranger.name}, which no record describes` } : { ours: true, folders };
}

/** Every entry of engine.dir but the install lock (none when it does not exist). */
export function listEngineDir(engineDir: string): EngineDirEntry[] {
  let names: string[];
  try { names = fs.readdirSync(engineDir).sort(); } catch (e) { if ((e as NodeJS.ErrnoException).code === "ENOENT") return []; throw e; }
  return names.filter((n) => n !== `${INSTALL_LOCK}.lock`).map((name) => {
    if (STAGING.test(name)) return { name, ours: true, folders: [], why: "an interrupted install's staging dir" };
    return { name, ...inspectVersion(path.join(engineDir, name)) };
  });
}

/**
 * Removes the staging dirs killed installs left. Builds for other node-llama-cpp versions are kept: the binary an
 * update keeps as `.previous` (what `appliance rollback` starts) loads its own version's build, and a build made for
 * the next binary before an update would otherwise remove the running service's engine. `engine status` lists them.
 * Call under the install lock. Returns the removed paths.
 */
export function pruneStaging(engineDir: string): string[] {
  const removed: string[] = [];
  for (const e of listEngineDir(engineDir)) {
    if (!e.ours || !STAGING.test(e.name)) continue;
    const p = path.join(engineDir, e.name);
    fs.rmSync(p, { recursive: true, force: true });
    removed.push(p);
  }
  return removed;
}

/**
 * For uninstall: removes every version dir that is ours, staging leftovers and the lock file, then engine.dir itself
 * if that left it empty. Returns what was removed and what was left (not provably ours).
 */
export function removeBuiltEngines(engineDir: string, dryRun = false): { removed: string[]; left: string[] } {
  const removed: string[] = [], left: string[] = [];
  // Only a dir only root can change holds builds root made: another owner could have planted what looks like ours.
  const st = fs.lstatSync(engineDir, { throwIfNoEntry: false });
  if (!st) return { removed, left };
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) return { removed, left: [`${engineDir} (not a directory only root can change: nothing in it removed)`] };
  for (const e of listEngineDir(engineDir)) {
    const p = path.join(engineDir, e.name);
    if (!e.ours) { left.push(`${p} (${e.why})`); continue; }
    if (!dryRun) fs.rmSync(p, { recursive: true, force: true });
    removed.push(p);
  }
  const lock = path.join(engineDir, `${INSTALL_LOCK}.lock`);
  if (fs.existsSync(lock)) { if (!dryRun) fs.rmSync(lock, { force: true }); removed.push(lock); }
  if (!left.length && fs.existsSync(engineDir)) { if (!dryRun) fs.rmdirSync(engineDir); removed.push(engineDir); }
  return { removed, left };
}
