import fs from "node:fs";

/**
 * The last complete line of a file ("" if none), and the byte length up to its end (to cut a torn tail).
 * Read backwards from the end in 64 KiB steps: reading the whole log at every start cost memory and time in
 * proportion to its size (a 174 MB log raised idle RSS from 258 to 477 MB).
 */
export function lastLine(file: string): { line: string; end: number; size: number } {
  let fd: number;
  try { fd = fs.openSync(file, "r"); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { line: "", end: 0, size: 0 };
    throw e;
  }
  try {
    const size = fs.fstatSync(fd).size;
    let pos = size, tail = Buffer.alloc(0); // tail = bytes [pos, size)
    for (;;) {
      const e = tail.lastIndexOf(0x0a);
      const s = e > 0 ? tail.lastIndexOf(0x0a, e - 1) : -1;
      if (s >= 0 || pos === 0) {
        if (e < 0) return { line: "", end: 0, size };
        return { line: tail.toString("utf8", s + 1, e), end: pos + e + 1, size };
      }
      const n = Math.min(64 * 1024, pos);
      pos -= n;
      const chunk = Buffer.alloc(n);
      fs.readSync(fd, chunk, 0, n, pos);
      tail = Buffer.concat([chunk, tail]);
    }
  } finally { fs.closeSync(fd); }
}
