/**
 * An exclusive advisory lock (flock(2)) on `<file>.lock`, held around every read-modify-write of a
 * shared file, so two writers (a `keys revoke` and a `keys create`) can never lose each other's
 * change. The kernel drops the lock when the holder exits, even on kill -9: no stale lock files to
 * clean up. The lock file is separate because the data file itself is replaced by rename.
 */
import { dlopen, FFIType } from "bun:ffi";
import fs from "node:fs";
import { fsyncDir, ownerFor, parentDir } from "./fs";

const LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;

let libc: { flock(fd: number, op: number): number } | undefined;
function flock(fd: number, op: number): number {
  if (!libc) {
    const name = process.platform === "darwin" ? "libc.dylib" : "libc.so.6";
    libc = dlopen(name, { flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } }).symbols as never;
  }
  return libc!.flock(fd, op);
}

export class LockError extends Error {}

export interface LockOptions {
  /** Called once if another process holds the lock and this one is about to wait for it. */
  onWait?: (lockFile: string) => void;
}

/** How often a waiting withFileLock tries the lock again. */
const RETRY_MS = 50;

/**
 * Runs fn while holding the exclusive lock for `file`; waits for another holder to finish first. It waits by trying
 * again every RETRY_MS, not in flock(2): blocked there, the process took no signal (`models add` waiting for the
 * manifest's lock ignored Ctrl-C and SIGTERM, and left its copy of the model behind when killed).
 */
export async function withFileLock<T>(file: string, fn: () => T | Promise<T>, opts: LockOptions = {}): Promise<T> {
  const { fd, lockFile } = openLock(file);
  try {
    if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      opts.onWait?.(lockFile);
      while (flock(fd, LOCK_EX | LOCK_NB) !== 0) await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    return await fn();
  } finally { flock(fd, LOCK_UN); fs.closeSync(fd); }
}

/** The synchronous form of withFileLock, for callers that are synchronous themselves. */
export function withFileLockSync<T>(file: string, fn: () => T, opts: LockOptions = {}): T {
  const fd = lockFd(file, opts);
  try { return fn(); } finally { flock(fd, LOCK_UN); fs.closeSync(fd); }
}

/**
 * Takes the exclusive lock for `file` without waiting and keeps it until release() (or the process ends): for a
 * single writer that holds a file for its whole life. undefined when another process holds it.
 */
export function holdFileLock(file: string): { release(): void } | undefined {
  const fd = lockFd(file, { wait: false });
  if (fd < 0) return undefined;
  return { release() { flock(fd, LOCK_UN); fs.closeSync(fd); } };
}

/** The lock file for `file`, opened (made, and given its dir's owner, when new); never through a link. */
function openLock(file: string): { fd: number; lockFile: string } {
  const lockFile = `${file}.lock`;
  const dir = parentDir(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const existed = fs.existsSync(lockFile);
  let fd: number;
  try {
    fd = fs.openSync(lockFile, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    // Not followed, and said plainly: a link planted at a lock's path made root's `keys revoke --all` (the runbook's
    // step 3) fail with a bare ELOOP (claims audit).
    if ((e as NodeJS.ErrnoException).code === "ELOOP") {
      throw new LockError(`${lockFile} is a symbolic link, not a lock file (not followed; whoever may write ${dir} could have put it there): remove it and run the command again`);
    }
    throw e;
  }
  try {
    if (!existed) {
      const owner = ownerFor(dir); // root locking the service's file: the service account can still lock it later
      if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
      fsyncDir(dir);
    }
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  return { fd, lockFile };
}

/** The locked descriptor; -1 when another holder has it and `wait` is false (else it waits in flock(2)). */
function lockFd(file: string, opts: LockOptions & { wait?: boolean }): number {
  const { fd, lockFile } = openLock(file);
  try {
    if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      opts.onWait?.(lockFile);
      if (opts.wait === false) { fs.closeSync(fd); return -1; }
      if (flock(fd, LOCK_EX) !== 0) throw new LockError(`cannot lock ${lockFile}`);
    }
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
