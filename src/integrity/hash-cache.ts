/**
 * A model's sha256 remembered across starts, so an unchanged multi-GB model is not re-read at every start.
 *
 * An entry says: the file whose (device, inode, size, mtime, ctime) are exactly these has this sha256. Any write
 * to the file changes its mtime and ctime; restoring the mtime afterwards (touch -d, utimes) still sets ctime to
 * now, and ctime cannot be set by any call; a file renamed over the path is another inode. So an entry can only
 * describe the bytes it was taken from.
 *
 * Who could forge one: whoever can write the cache file, or rewrite a model and then the cache. So the cache is
 * used only when the cache file, the manifest and the model file are all owned by root and not writable by group
 * or others (an installed appliance: the service account can then change none of them), and it is written only by
 * root, as root-owned (the daily verify, `models add`, install, a serve run as root) — never by the service account.
 * Anywhere else every start hashes, exactly as without it.
 */
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-write";
import { openPlainFile, readFd } from "../util/fs";
import { manifestPath } from "./manifest";

/** In the models dir, next to the manifest; a dot file, so it is never taken for a model. */
export const HASH_CACHE = ".sha256-cache.json";
/** Entries kept at most (one per model path; more means a directory churned through many files). */
const MAX_ENTRIES = 1000;
/**
 * A file changed less than this long ago is not remembered ("racy git"): file times advance in coarse clock ticks
 * (1-10 ms), so a write just after our hash, within the same tick, could leave size, mtime and ctime unchanged.
 */
export const RACY_MS = 100;

/** `template`: the build (see resolve.ts) whose chat-template trial these bytes passed. */
interface Entry { dev: string; ino: string; size: string; mtimeNs: string; ctimeNs: string; sha256: string; template?: string }
type FileStat = fs.BigIntStats;

export const hashCachePath = (modelsDir: string) => path.join(modelsDir, HASH_CACHE);

/** Owned by root and writable by nobody else: only root could have written it. */
export const rootOnly = (st: { uid: number | bigint; mode: number | bigint }) => Number(st.uid) === 0 && (Number(st.mode) & 0o022) === 0;

const keyOf = (st: FileStat) => ({ dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) });
const same = (e: Entry, st: FileStat) => Object.entries(keyOf(st)).every(([k, v]) => e[k as keyof Entry] === v);

export class HashCache {
  private entries = new Map<string, Entry>();
  private changed = false;
  /** Why the cache is not used here (undefined: it is). */
  readonly untrusted?: string;

  private constructor(readonly modelsDir: string, readonly writable: boolean, private readonly now: () => number) {
    this.untrusted = this.load();
  }

  /** Opens the models dir's cache; writable only by root (what root writes is root-owned). `now`: wall clock, ms. */
  static open(modelsDir: string, opts: { euid?: number; now?: () => number } = {}): HashCache {
    return new HashCache(modelsDir, (opts.euid ?? process.geteuid?.() ?? -1) === 0, opts.now ?? Date.now);
  }

  private load(): string | undefined {
    const manifest = fs.lstatSync(manifestPath(this.modelsDir), { throwIfNoEntry: false });
    if (!manifest?.isFile() || !rootOnly(manifest)) return "the manifest is not a root-owned file writable only by root";
    const file = hashCachePath(this.modelsDir);
    let fd: number;
    try { fd = openPlainFile(file); } catch { return fs.existsSync(file) ? "the cache is not a plain file" : "no cache yet"; }
    try {
      if (!rootOnly(fs.fstatSync(fd))) return "the cache file is not root-owned or is writable by others";
      const parsed = JSON.parse(readFd(fd).toString("utf8")) as { version?: number; entries?: Record<string, Entry> };
      if (parsed.version !== 1 || typeof parsed.entries !== "object" || !parsed.entries) return "the cache file has an unknown format";
      for (const [p, e] of Object.entries(parsed.entries)) {
        if (e && /^[0-9a-f]{64}$/.test(String(e.sha256))) this.entries.set(p, e);
      }
      return undefined;
    } catch { return "the cache file is unreadable"; } finally { fs.closeSync(fd); }
  }

  /**
   * The remembered sha256 of the file open at `fd` (its path `file`), if the cache is trusted, the file is
   * root-owned and writable only by root, and its identity and times are exactly those recorded.
   */
  lookup(file: string, st: FileStat): string | undefined {
    if (this.untrusted || !st.isFile() || !rootOnly(st)) return undefined;
    const e = this.entries.get(path.resolve(file));
    return e && same(e, st) ? e.sha256 : undefined;
  }

  /**
   * Remembers a hash just computed; `before` and `after` are the file's stat around the hashing (a file changed
   * meanwhile is not remembered). Only root-owned files writable only by root, and only when this process is root.
   * `ownCopy`: the caller wrote the file itself through a descriptor nobody else holds (`models add`'s copy), so no
   * other writer can hide in the racy window.
   */
  remember(file: string, before: FileStat, after: FileStat, sha256: string, ownCopy = false) {
    if (!this.writable || !before.isFile() || !rootOnly(after) || !same({ ...keyOf(before), sha256 }, after)) return;
    const racy = (ns: bigint) => this.now() - Number(ns / 1_000_000n) < RACY_MS;
    if (!ownCopy && (racy(after.ctimeNs) || racy(after.mtimeNs))) return;
    const key = path.resolve(file);
    const prev = this.entries.get(key);
    if (prev && prev.sha256 === sha256 && same(prev, after)) return;
    this.entries.set(key, { ...keyOf(after), sha256 });
    this.changed = true;
  }

  /** Whether these exact bytes (as in lookup) passed the chat-template trial under the build `key`. */
  templatePassed(file: string, st: FileStat, key: string): boolean {
    if (this.untrusted || !st.isFile() || !rootOnly(st)) return false;
    const e = this.entries.get(path.resolve(file));
    return !!e && same(e, st) && e.template === key;
  }

  /** Records a template trial passed, on the entry of these exact bytes (only if their hash is remembered). */
  rememberTemplate(file: string, st: FileStat, key: string) {
    const e = this.entries.get(path.resolve(file));
    if (!this.writable || !e || !same(e, st) || e.template === key) return;
    e.template = key;
    this.changed = true;
  }

  /** Writes the cache (root-owned 0644: the service reads it) if anything was remembered; never throws. */
  save(): boolean {
    if (!this.writable || !this.changed) return false;
    const kept = [...this.entries].filter(([p]) => fs.existsSync(p)).slice(-MAX_ENTRIES);
    try {
      writeFileAtomic(hashCachePath(this.modelsDir), JSON.stringify({ version: 1, entries: Object.fromEntries(kept) }) + "\n",
        { mode: 0o644, owner: { uid: 0, gid: 0 } });
      this.changed = false;
      return true;
    } catch { return false; } // a read-only models dir (the unit's ReadOnlyPaths): the next root check writes it
  }
}
