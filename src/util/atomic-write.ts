/**
 * Atomic, durable replacement of a small file: write a fresh temp file next to it (O_EXCL, never
 * following a planted link), set owner and mode by descriptor, fsync, rename over the target, fsync
 * the directory. Readers see the old file or the new one, never a torn one, also after a power cut.
 * For read-modify-write, hold withFileLock around the read and this call.
 */
import fs from "node:fs";
import path from "node:path";
import { fsyncDir, ownerFor } from "./fs";
import { randomBytes } from "./random";

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0600). */
  mode?: number;
  /** Owner of the new file; default: the directory's owner when root writes (see ownerFor), else unchanged. */
  owner?: { uid: number; gid: number } | null;
}

export function writeFileAtomic(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}) {
  const dir = path.dirname(path.resolve(file));
  const mode = opts.mode ?? 0o600;
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const c = fs.constants;
  const fd = fs.openSync(tmp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, mode);
  try {
    try {
      fs.writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
      const owner = opts.owner === undefined ? ownerFor(dir) : opts.owner;
      // Only when it differs: a root run writing root's own file then makes no chown call, which the
      // service unit's SystemCallFilter does not allow (tests/service/syscalls.test.ts runs serve as root).
      if (owner) {
        const st = fs.fstatSync(fd);
        if (st.uid !== owner.uid || st.gid !== owner.gid) fs.fchownSync(fd, owner.uid, owner.gid);
      }
      fs.fchmodSync(fd, mode); // the umask may have narrowed the create mode
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}
