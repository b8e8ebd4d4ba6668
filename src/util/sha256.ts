/**
 * The one sha256: of bytes, of a file by path, and of an open descriptor. Hashing a
 * descriptor is what lets a caller check and then use the very same bytes (a path can be
 * re-pointed between two opens; an open descriptor cannot). Bun's native hasher: node:crypto's module is not loaded
 * for it (util/node-builtins.ts).
 */
import fs from "node:fs";

export type Progress = (done: number, total: number) => void;

const CHUNK = 4 << 20;

export const sha256Bytes = (b: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

/**
 * Streams an open descriptor from byte 0 to its end through sha256 (positional reads, so the
 * descriptor's own offset is left alone). Async so a multi-GB model does not freeze the event loop.
 */
export async function sha256Fd(fd: number, onProgress?: Progress): Promise<string> {
  const hash = new Bun.CryptoHasher("sha256");
  const total = fs.fstatSync(fd).size;
  const buf = Buffer.allocUnsafe(CHUNK);
  let done = 0;
  for (;;) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buf, 0, CHUNK, done, (err, bytes) => (err ? reject(err) : resolve(bytes))));
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    done += n;
    onProgress?.(done, total);
  }
  return hash.digest("hex");
}

/** The synchronous twin of sha256Fd, for small files (keys, native libraries). */
export function sha256FdSync(fd: number): string {
  const hash = new Bun.CryptoHasher("sha256");
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let pos = 0; ;) {
    const n = fs.readSync(fd, buf, 0, CHUNK, pos);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    pos += n;
  }
  return hash.digest("hex");
}

/** sha256 of a file by path (follows symlinks; use sha256Fd on a descriptor you opened when that matters). */
export async function sha256File(file: string, onProgress?: Progress): Promise<string> {
  const fd = fs.openSync(file, "r");
  try { return await sha256Fd(fd, onProgress); } finally { fs.closeSync(fd); }
}
