/**
 * node-llama-cpp reads a GGUF file's header (metadata, tensor info) in JavaScript before every model load. Its file
 * reader reads 4 MiB past whatever is asked into a zeroed buffer and copies that into another one: two fresh 4 MiB
 * allocations (~2,000 page faults) for a header of a few KiB, 50-70 ms of the cold start on a VM where a page fault
 * costs 10-20 µs (`model check` in serve's `start phases`, scripts/bench-cold.ts).
 *
 * This reader grows its buffer by doubling from 64 KiB, never past the file's end, and reads each new part with
 * one positioned read (a file opened and closed per part, as the original does). scripts/build.ts puts it in place
 * of node-llama-cpp's GgufFsFileReader in the compiled binary, handing in the package's own base class and offset
 * type (internal modules, so they are parameters here and this file imports nothing of node-llama-cpp). Bun.mmap
 * was not usable: it opens the file read-write, which the service account may not do to a root-owned model.
 *
 * Difference: a read past the end of the file fails with an error; the original returned zeros there.
 *
 * Arrays (a vocabulary: tokens, scores, token types, merges) are read by `readArray` in one loop: node-llama-cpp's
 * parser reads each element through several promise-or-value closures (~15 µs an element in a fresh process: 11 ms
 * of `model check` for the 28 M test model's ~700-token vocabulary, far more for a real 32k-150k one). The build
 * patches its parser to ask for it first (scripts/build.ts, fastArrays); the values are the ones its per-element
 * reads give (tests/engine/gguf-fs-reader.test.ts).
 */
import fs from "node:fs";
import path from "node:path";

/** What the reader needs of node-llama-cpp's GgufReadOffset. */
export interface ReadOffset { offset: number; moveBy(n: number): void }
export interface ReadOffsetClass { resolveReadOffset(offset: number | ReadOffset): ReadOffset }
type BaseReader = new (...args: any[]) => { _buffer: Buffer };

/** GGUF value types (node-llama-cpp's GgufValueType) → [bytes, read at an offset of a buffer]; strings apart. */
const FIXED: Record<number, [number, (b: Buffer, at: number) => unknown]> = {
  0: [1, (b, at) => b.readUInt8(at)], 1: [1, (b, at) => b.readInt8(at)], 2: [2, (b, at) => b.readUInt16LE(at)],
  3: [2, (b, at) => b.readInt16LE(at)], 4: [4, (b, at) => b.readUInt32LE(at)], 5: [4, (b, at) => b.readInt32LE(at)],
  6: [4, (b, at) => b.readFloatLE(at)], 7: [1, (b, at) => b.readUInt8(at) === 1], 10: [8, (b, at) => b.readBigUInt64LE(at)],
  11: [8, (b, at) => b.readBigInt64LE(at)], 12: [8, (b, at) => b.readDoubleLE(at)],
};
const STRING = 8;

/** The first read; the buffer then doubles (a large vocabulary's header is a few MiB). */
export const FIRST_READ = 64 * 1024;

/** node-llama-cpp's GgufFsFileReader with reads sized to the header (same constructor and methods). */
export function ggufFsReader<B extends BaseReader>(Base: B, ReadOffset: ReadOffsetClass) {
  return class GgufFsFileReader extends Base {
    filePath: string;
    _signal?: AbortSignal;
    /** Bytes read from disk (what the header parse cost; tests read it). */
    bytesRead = 0;

    constructor(...args: any[]) {
      super();
      const { filePath, signal } = args[0] as { filePath: string; signal?: AbortSignal };
      this.filePath = path.resolve(process.cwd(), filePath);
      this._signal = signal;
    }

    /** The bytes at offset (fewer at the end of the file), moving a read offset past them. */
    readByteRange(offset: number | ReadOffset, length: number): Buffer {
      const at = ReadOffset.resolveReadOffset(offset);
      this.fill(at.offset + length);
      const bytes = this._buffer.subarray(at.offset, at.offset + length);
      at.moveBy(length);
      return bytes;
    }

    /**
     * An array's `length` values of GGUF type `type` at offset, moving it past them, exactly as reading them one by
     * one would give; undefined (nothing read) for a type read otherwise (nested arrays).
     */
    readArray(offset: number | ReadOffset, type: number, length: number | bigint): unknown[] | undefined {
      const fixed = FIXED[type];
      if (!fixed && type !== STRING) return undefined;
      const at = ReadOffset.resolveReadOffset(offset);
      const n = Number(length);
      const values: unknown[] = [];
      if (fixed) {
        const [width, read] = fixed;
        this.ensureHasByteRange(at.offset, n * width);
        const b = this._buffer;
        for (let i = 0, p = at.offset; i < n; i++, p += width) values.push(read(b, p));
        at.moveBy(n * width);
        return values;
      }
      let p = at.offset;
      for (let i = 0; i < n; i++) {
        this.ensureHasByteRange(p, 8);
        const len = Number(this._buffer.readBigUInt64LE(p));
        this.ensureHasByteRange(p + 8, len);
        values.push(this._buffer.toString("utf8", p + 8, p + 8 + len));
        p += 8 + len;
      }
      at.moveBy(p - at.offset);
      return values;
    }

    ensureHasByteRange(offset: number | ReadOffset, length: number): undefined {
      const end = ReadOffset.resolveReadOffset(offset).offset + length;
      this.fill(end);
      if (end > this._buffer.length) throw new Error(`${this.filePath}: the GGUF header runs past the end of the file (${this._buffer.length} bytes)`);
      return undefined;
    }

    /** Reads on until the buffer holds `end` bytes or the whole file. */
    private fill(end: number) {
      const have = this._buffer.length;
      if (end <= have) return;
      if (this._signal?.aborted) throw this._signal.reason;
      const fd = fs.openSync(this.filePath, "r");
      try {
        const size = fs.fstatSync(fd).size;
        const want = Math.min(size, Math.max(end, have * 2, FIRST_READ));
        if (want <= have) return;
        const next = Buffer.allocUnsafe(want);
        this._buffer.copy(next);
        let at = have;
        while (at < want) {
          const n = fs.readSync(fd, next, at, want - at, at);
          if (n === 0) break; // shrank while read: the buffer ends at what exists
          at += n;
        }
        this.bytesRead += at - have;
        this._buffer = next.subarray(0, at);
      } finally {
        fs.closeSync(fd);
      }
    }
  };
}
