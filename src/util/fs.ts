/** Small descriptor-based file helpers: open without following a final symlink, read by descriptor, fsync a directory. */
import fs from "node:fs";
import path from "node:path";

/** Thrown when a path that must be a plain file is a symlink (or something else). */
export class NotPlainFileError extends Error {
  constructor(readonly file: string, what: string) { super(`${file} is ${what}, not a plain file: refusing it`); this.name = "NotPlainFileError"; }
}

/**
 * Opens a path read-only without following a symlink in its last component, and insists on a regular file.
 * O_NONBLOCK: a FIFO planted at the path must not hang the open (it is refused below); no effect on a regular file.
 */
export function openPlainFile(file: string, flags = fs.constants.O_RDONLY, mode = 0o600): number {
  let fd: number;
  try {
    fd = fs.openSync(file, flags | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK, mode);
  } catch (e) {
    // O_NOFOLLOW on a symlink fails with ELOOP (Linux, macOS); say what it is rather than "too many links".
    if ((e as NodeJS.ErrnoException).code === "ELOOP") throw new NotPlainFileError(file, "a symbolic link");
    throw e;
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new NotPlainFileError(file, st.isDirectory() ? "a directory" : "a special file");
  }
  return fd;
}

/**
 * Copies `from` to a new file `to` and returns the sha256 of exactly the bytes written: one descriptor of the
 * source (a regular file; a symlink is followed, as a path the operator gave), read once, each block hashed and
 * written. `to` is created here (O_EXCL, any old one removed first) with mode 0600 and gets `mode` (and `owner`, as
 * root) by descriptor only once whole and fsynced. What is hashed is what was written, and nobody else could write it meanwhile: fs.copyFileSync gave the
 * new file the source's mode first (0777 from a world-writable download: another user could open it for writing
 * before chmod and change it after it was hashed, fix-attack run), and hashing the source by its path and copying it
 * by its path again let a file swapped in between be installed.
 */
export function copyHashed(from: string, to: string, mode: number, owner?: { uid: number; gid: number }): string {
  // O_NONBLOCK: a FIFO given as the source must not hang the open (it is refused below); no effect on a regular file.
  const src = fs.openSync(from, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  let dst: number | undefined;
  try {
    const st = fs.fstatSync(src);
    if (!st.isFile()) throw new NotPlainFileError(from, st.isDirectory() ? "a directory" : "a special file");
    fs.rmSync(to, { force: true });
    dst = fs.openSync(to, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    const hash = new Bun.CryptoHasher("sha256");
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(src, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      writeAll(dst, buf.subarray(0, n), to);
    }
    fs.fsyncSync(dst);
    fs.fchmodSync(dst, mode);
    if (owner && process.getuid?.() === 0) fs.fchownSync(dst, owner.uid, owner.gid);
    return hash.digest("hex");
  } catch (e) {
    if (dst !== undefined) { fs.closeSync(dst); dst = undefined; fs.rmSync(to, { force: true }); }
    throw e;
  } finally {
    fs.closeSync(src);
    if (dst !== undefined) fs.closeSync(dst);
  }
}

/** The path that reopens an open descriptor's file (not whatever the original path names now). */
export function descriptorPath(fd: number): string {
  return process.platform === "linux" ? `/proc/self/fd/${fd}` : `/dev/fd/${fd}`;
}

/**
 * A small regular file's text: undefined when it is missing, is not a regular file (a link, FIFO, device or
 * directory planted there), or holds more than `maxBytes` (a remembered fact that large is not one we wrote).
 */
export function readSmallFile(file: string, maxBytes: number): string | undefined {
  let fd: number;
  try { fd = openPlainFile(file); } catch { return undefined; }
  try {
    const buf = Buffer.allocUnsafe(maxBytes + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n <= maxBytes;) { got = fs.readSync(fd, buf, n, maxBytes + 1 - n, n); n += got; }
    return n > maxBytes ? undefined : buf.toString("utf8", 0, n);
  } catch { return undefined; } finally { fs.closeSync(fd); }
}

/** A regular file's whole text, never through a link or from a FIFO or device (openPlainFile); throws like it. */
export function readPlainFile(file: string): string {
  const fd = openPlainFile(file);
  try { return readFd(fd).toString("utf8"); } finally { fs.closeSync(fd); }
}

/** Reads a whole file through a descriptor, from byte 0 to its end. */
export function readFd(fd: number): Buffer {
  const chunks: Buffer[] = [];
  let pos = 0;
  for (let size = fs.fstatSync(fd).size + 1; ; size = 65536) {
    const buf = Buffer.allocUnsafe(size);
    const n = fs.readSync(fd, buf, 0, size, pos);
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    pos += n;
  }
  return Buffer.concat(chunks);
}

/** fsyncs a directory so a rename or create inside it survives a power cut. Best effort where the OS refuses. */
/** The dirs above `p`, nearest first, up to and including `top` (or `/`). */
export function* dirsAbove(p: string, top = "/"): Generator<string> {
  const highest = path.resolve(top);
  for (let d = path.dirname(path.resolve(p)); ; d = path.dirname(d)) {
    yield d;
    if (d === highest || d === path.dirname(d)) return;
  }
}

export function fsyncDir(dir: string) {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0));
    fs.fsyncSync(fd);
  } catch { /* some filesystems refuse fsync on a directory: the rename itself is still atomic */ } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The owner a file created in `dir` should get: the directory's, when root writes into a service account's directory. */
export function ownerFor(dir: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const st = fs.statSync(dir);
  return st.uid !== 0 || st.gid !== 0 ? { uid: st.uid, gid: st.gid } : undefined;
}

export const parentDir = (file: string) => path.dirname(path.resolve(file));

/**
 * Removes `dir` and its parents up to and including `top` (the first dir a recursive mkdir made), each only while it
 * is empty: a refused model's dirs go, never what another process put there meanwhile (kept, and what is above it).
 */
export function removeEmptyDirs(dir: string, top: string) {
  const last = path.resolve(top);
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try { fs.rmdirSync(d); } catch { return; }
    if (d === last || path.dirname(d) === d) return;
  }
}

/**
 * Appends `text` whole or not at all. A write cut short (a full disk: the kernel writes up to the last free block,
 * then ENOSPC) is cut back off before the error is thrown, so no torn line is left mid-file for the next append to
 * run on from (a hash-chained log would then fail verification for good). Only for files this process alone
 * appends to (the audit log holds its writer lock).
 */
export function appendWhole(file: string, text: string, mode = 0o600) {
  const fd = openAppend(file, mode);
  try { writeWhole(fd, text); } finally { fs.closeSync(fd); }
}

/**
 * A plain file opened to append to (openPlainFile): never through a link, never waiting on a FIFO, nothing but a
 * regular file (fix-attack run: a FIFO planted at audit.checkpoints hung the server for good; a link there was written
 * through).
 */
const openAppend = (file: string, mode: number) => openPlainFile(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, mode);

/**
 * Every byte of `buf` written at the descriptor's offset, or an error: one write call may return short (a nearly full
 * disk returns what fit, the next call fails with ENOSPC). `what` names the file in the error of a zero-length write.
 */
export function writeAll(fd: number, buf: Uint8Array, what = `fd ${fd}`) {
  for (let done = 0; done < buf.length;) {
    const n = fs.writeSync(fd, buf, done, buf.length - done);
    if (n <= 0) throw new Error(`${what}: short write (${done} of ${buf.length} bytes)`);
    done += n;
  }
}

/** appendWhole's write: whole, or cut back to where it began. */
function writeWhole(fd: number, text: string) {
  const size = fs.fstatSync(fd).size;
  const buf = Buffer.from(text, "utf8");
  try {
    writeAll(fd, buf);
  } catch (e) {
    try { fs.ftruncateSync(fd, size); } catch { /* the error below says what failed; the next start repairs a torn tail */ }
    throw e;
  }
}

/**
 * appendWhole on a descriptor kept open between appends, so a process out of descriptors (EMFILE: a flood of
 * connections) still writes (resilience run: each append opened the file, and the audit record was lost). The path
 * is looked at (stat, no descriptor) before each append: a rotation (renamed or removed) opens the new file.
 */
export class Appender {
  private fd: number | undefined;
  private ino = -1;
  constructor(readonly file: string, private readonly mode = 0o600) {}

  append(text: string) {
    let ino = -1;
    try { ino = fs.statSync(this.file).ino; } catch { /* gone: (re)created below */ }
    if (this.fd === undefined || ino !== this.ino) {
      this.close();
      this.fd = openAppend(this.file, this.mode);
      this.ino = fs.fstatSync(this.fd).ino;
    }
    writeWhole(this.fd, text);
  }

  close() {
    if (this.fd !== undefined) { try { fs.closeSync(this.fd); } catch { /* already gone */ } }
    this.fd = undefined;
  }
}
