/**
 * Atomic, durable replacement of a small file: write a fresh temp file next to it (O_EXCL, never
 * following a planted link), set owner and mode by descriptor, fsync, rename over the target, fsync
 * the directory. Readers see the old file or the new one, never a torn one, also after a power cut.
 * For read-modify-write, hold withFileLock around the read and this call.
 */
import fs from "node:fs";
import path from "node:path";
import { fsyncDir, ownerFor, writeAll } from "./fs";
import { randomBytes } from "./random";

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0600). */
  mode?: number;
  /** Owner of the new file; default: the directory's owner when root writes (see ownerFor), else unchanged. */
  owner?: { uid: number; gid: number } | null;
}

export function writeFileAtomic(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}) {
  writeFilesAtomic([{ file, data, opts }]);
}

/** One file of writeFilesAtomic. */
export interface AtomicFile { file: string; data: string | Uint8Array; opts?: AtomicWriteOptions }

/**
 * writeFileAtomic for several files: every temp file is written first, then all are synced, renamed, and each
 * directory synced once. Each file on its own is replaced atomically and durably as with writeFileAtomic (the set is
 * not: a crash can leave some replaced and others not). Why: a sync per file and per directory made unpacking the
 * 28 native libraries at a first start cost 56 journal flushes (scripts/bench-cold.ts, state removed).
 */
export function writeFilesAtomic(files: readonly AtomicFile[]) {
  const c = fs.constants;
  const open: { fd: number; tmp: string; file: string }[] = [];
  try {
    for (const { file, data, opts = {} } of files) {
      const dir = path.dirname(path.resolve(file));
      const mode = opts.mode ?? 0o600;
      const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
      const fd = fs.openSync(tmp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, mode);
      open.push({ fd, tmp, file });
      // Every byte or an error: a single write call renamed a cut-off file over the good one on a nearly full disk,
      // reported as success (a 100 KiB file on a 64 KiB tmpfs: 61,440 bytes written).
      writeAll(fd, typeof data === "string" ? Buffer.from(data) : data, tmp);
      const owner = opts.owner === undefined ? ownerFor(dir) : opts.owner;
      // Only when it differs: a root run writing root's own file then makes no chown call, which the
      // service unit's SystemCallFilter does not allow (tests/service/syscalls.test.ts runs serve as root).
      if (owner) {
        const st = fs.fstatSync(fd);
        if (st.uid !== owner.uid || st.gid !== owner.gid) fs.fchownSync(fd, owner.uid, owner.gid);
      }
      fs.fchmodSync(fd, mode); // the umask may have narrowed the create mode
    }
    // Written first, synced after: the first sync flushes the journal with every file's data in it, the rest find
    // little left to do.
    for (const o of open) fs.fsyncSync(o.fd);
    while (open.length) {
      const o = open[0]!;
      fs.closeSync(o.fd);
      open.shift(); // closed: a failed rename below leaves only its temp file to remove
      try { fs.renameSync(o.tmp, o.file); } catch (e) { fs.rmSync(o.tmp, { force: true }); throw e; }
    }
  } catch (e) {
    for (const o of open) { try { fs.closeSync(o.fd); } catch { /* already closed */ } fs.rmSync(o.tmp, { force: true }); }
    throw e;
  }
  for (const dir of new Set(files.map((f) => path.dirname(path.resolve(f.file))))) fsyncDir(dir);
}
