/**
 * A file's sha256 remembered across starts, keyed by what no writer can keep unchanged: an entry says "the file whose
 * (device, inode, size, mtime, ctime) are exactly these has this sha256". Any write changes mtime and ctime;
 * restoring the mtime afterwards (touch -d, utimes) still sets ctime to now, and ctime cannot be set by any call; a
 * file renamed over the path is another inode. So an entry can only describe the bytes it was taken from.
 *
 * Who could forge one: whoever can write the cache file, or rewrite a file and then the cache. So a cache is used only
 * when it and the file are owned by root and not writable by group or others, and it is written only by root, as
 * root-owned. Anywhere else every lookup misses, exactly as without a cache. Used for models (integrity/hash-cache.ts,
 * with the manifest's owner checked too) and for the unpacked native libraries (engine/native.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "./atomic-write";
import { openPlainFile, readFd } from "./fs";

/** Entries kept at most (one per path; more means a directory churned through many files). */
const MAX_ENTRIES = 1000;
/**
 * A file changed less than this long ago is not remembered ("racy git"): file times advance in coarse clock ticks
 * (1-10 ms), so a write just after our hash, within the same tick, could leave size, mtime and ctime unchanged.
 */
export const RACY_MS = 100;

/** What an entry records. */
export interface DigestEntry { dev: string; ino: string; size: string; mtimeNs: string; ctimeNs: string; sha256: string }
type FileStat = fs.BigIntStats;

/** Owned by root and writable by nobody else: only root could have written it. */
export const rootOnly = (st: { uid: number | bigint; mode: number | bigint }) => Number(st.uid) === 0 && (Number(st.mode) & 0o022) === 0;

const keyOf = (st: FileStat) => ({ dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) });
const same = (e: DigestEntry, st: FileStat) => Object.entries(keyOf(st)).every(([k, v]) => e[k as keyof DigestEntry] === v);

export interface DigestCacheOptions {
  /** Effective uid (default: this process's); only root writes. */
  euid?: number;
  /** Wall clock in ms, for the racy window. */
  now?: () => number;
  /** Why the cache must not be used here, checked before reading it (e.g. the models manifest is not root's). */
  distrust?: () => string | undefined;
}

export class DigestCache {
  private entries = new Map<string, DigestEntry>();
  private changed = false;
  /** Why the cache is not used here (undefined: it is). */
  readonly untrusted?: string;
  readonly writable: boolean;
  private readonly now: () => number;

  constructor(readonly file: string, opts: DigestCacheOptions = {}) {
    this.writable = (opts.euid ?? process.geteuid?.() ?? -1) === 0;
    this.now = opts.now ?? Date.now;
    this.untrusted = opts.distrust?.() ?? this.load();
  }

  private load(): string | undefined {
    let fd: number;
    try { fd = openPlainFile(this.file); } catch { return fs.existsSync(this.file) ? "the cache is not a plain file" : "no cache yet"; }
    try {
      if (!rootOnly(fs.fstatSync(fd))) return "the cache file is not root-owned or is writable by others";
      const parsed = JSON.parse(readFd(fd).toString("utf8")) as { version?: number; entries?: Record<string, DigestEntry> };
      if (parsed.version !== 1 || typeof parsed.entries !== "object" || !parsed.entries) return "the cache file has an unknown format";
      for (const [p, e] of Object.entries(parsed.entries)) {
        if (e && /^[0-9a-f]{64}$/.test(String(e.sha256))) this.entries.set(p, e);
      }
      return undefined;
    } catch { return "the cache file is unreadable"; } finally { fs.closeSync(fd); }
  }

  /** The trusted entry for exactly these bytes: the cache trusted, the file root-only, identity and times as recorded. */
  private entry(file: string, st: FileStat): DigestEntry | undefined {
    if (this.untrusted || !st.isFile() || !rootOnly(st)) return undefined;
    const e = this.entries.get(path.resolve(file));
    return e && same(e, st) ? e : undefined;
  }

  /** The remembered sha256 of the file (its path `file`, its stat `st`), if the cache may be used for it. */
  lookup(file: string, st: FileStat): string | undefined {
    return this.entry(file, st)?.sha256;
  }

  /**
   * Remembers a hash just computed; `before` and `after` are the file's stat around the hashing (a file changed
   * meanwhile is not remembered). Only root-owned files writable only by root, and only when this process is root.
   * `ownCopy`: the caller wrote the file itself, where only root can write, so no other writer can hide in the racy window.
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

  /** Writes the cache (root-owned 0644: the service reads it) if anything was remembered; never throws. */
  save(): boolean {
    if (!this.writable || !this.changed) return false;
    const kept = [...this.entries].filter(([p]) => fs.existsSync(p)).slice(-MAX_ENTRIES);
    try {
      writeFileAtomic(this.file, JSON.stringify({ version: 1, entries: Object.fromEntries(kept) }) + "\n",
        { mode: 0o644, owner: { uid: 0, gid: 0 } });
      this.changed = false;
      return true;
    } catch { return false; } // a read-only dir (the unit's ReadOnlyPaths): the next root run writes it
  }
}
