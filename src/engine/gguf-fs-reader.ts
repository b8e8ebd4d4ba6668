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
 */
import fs from "node:fs";
import path from "node:path";

/** What the reader needs of node-llama-cpp's GgufReadOffset. */
export interface ReadOffset { offset: number; moveBy(n: number): void }
export interface ReadOffsetClass { resolveReadOffset(offset: number | ReadOffset): ReadOffset }
type BaseReader = new (...args: any[]) => { _buffer: Buffer };

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
