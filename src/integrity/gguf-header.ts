/**
 * A GGUF sanity check that runs before llama.cpp parses a file: magic, version,
 * tensor/kv counts and string lengths within sane bounds, every tensor's data
 * inside the file. A truncated or crafted file gets a clear error naming what
 * is wrong, instead of whatever the native parser would do with it.
 */
import fs from "node:fs";

export class GgufHeaderError extends Error {
  constructor(file: string, what: string, expected: string, actual: string) {
    super(`${file}: invalid GGUF ${what}: expected ${expected}, got ${actual}`);
    this.name = "GgufHeaderError";
  }
}

const LIMITS = { tensors: 100_000, kv: 100_000, string: 1 << 24, array: 1 << 26, dims: 4, header: 512 << 20 };
/**
 * [bytes per block, elements per block] for each ggml type (F32, F16, Q4_0 … MXFP4), enough to size tensor
 * data. A test checks every entry against the llama.cpp binding itself, so the table cannot drift.
 */
export const TYPE_SIZE: Record<number, [number, number]> = {
  0: [4, 1], 1: [2, 1], 2: [18, 32], 3: [20, 32], 6: [22, 32], 7: [24, 32], 8: [34, 32], 9: [36, 32],
  10: [84, 256], 11: [110, 256], 12: [144, 256], 13: [176, 256], 14: [210, 256], 15: [292, 256],
  16: [66, 256], 17: [74, 256], 18: [98, 256], 19: [50, 256], 20: [18, 32], 21: [110, 256], 22: [82, 256],
  23: [136, 256], 24: [1, 1], 25: [2, 1], 26: [4, 1], 27: [8, 1], 28: [8, 1], 29: [56, 256], 30: [2, 1],
  34: [54, 256], 35: [66, 256], 39: [17, 32], 40: [36, 64], 41: [18, 128], 42: [18, 64],
};

/** llama.cpp's LLAMA_MAX_LAYERS: more blocks than this abort the loader. */
export const MAX_LAYERS = 512;
/** Recurrent architectures legitimately write attention.head_count = 0 (no attention). */
const NO_ATTENTION = new Set(["mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"]);

/**
 * Hyperparameters that llama.cpp trusts and asserts on (a crafted value aborts the whole process or
 * makes every request fail): checked here with a clear message instead. Per-layer arrays are left alone.
 */
function checkHyperparameters(file: string, arch: string, n: Map<string, number>) {
  const range = (key: string, lo: number, hi: number) => {
    const v = n.get(`${arch}.${key}`);
    if (v !== undefined && !(Number.isInteger(v) && v >= lo && v <= hi)) throw new GgufHeaderError(file, `${arch}.${key}`, `an integer in ${lo}..${hi}`, String(v));
    return v;
  };
  range("block_count", 1, MAX_LAYERS);
  range("context_length", 1, 1 << 24);
  const embd = range("embedding_length", 1, 1 << 20);
  if (NO_ATTENTION.has(arch)) return; // recurrent models also write feed_forward_length = 0
  // 0 here aborts ggml (a zero-sized tensor dimension). RoPE never rotates more dimensions than the embedding has.
  range("feed_forward_length", 1, 1 << 24);
  range("rope.dimension_count", 1, embd ?? 1 << 20);
  const heads = range("attention.head_count", 1, 1 << 16);
  const kv = range("attention.head_count_kv", 1, heads ?? 1 << 16);
  if (heads !== undefined && kv !== undefined && heads % kv !== 0) {
    throw new GgufHeaderError(file, `${arch}.attention.head_count_kv`, `a divisor of attention.head_count (${heads})`, String(kv));
  }
}

export interface GgufSummary {
  version: number; tensors: number; kv: number; architecture?: string; dataOffset: number;
  /** tokenizer.chat_template, if the file has one (serve trial-renders it before loading: see model-preflight.ts). */
  chatTemplate?: string;
}

/**
 * Checks the GGUF at `file`, or — when `openFd` is given — the bytes behind that descriptor (the very
 * file the caller hashed or copied; `file` then only names it in errors). The descriptor stays open.
 */
export function checkGgufHeader(file: string, openFd?: number): GgufSummary {
  const fd = openFd ?? fs.openSync(file, "r");
  const size = fs.fstatSync(fd).size;
  try {
    // Read the header in growing steps: metadata is usually a few MB, but the file can be many GB. The first step is
    // small: every page of a fresh buffer costs a page fault, and a 1 MiB first read cost serve ~11 ms per model at
    // each start (a small model's whole header is tens of KB; `start phases`, scripts/bench-cold.ts).
    const cap = Math.min(size, LIMITS.header);
    let headLen = Math.min(cap, 64 << 10);
    let buf = Buffer.alloc(headLen);
    fs.readSync(fd, buf, 0, headLen, 0);
    let pos = 0;
    const need = (n: number, what: string) => {
      if (pos + n <= headLen) return;
      if (pos + n > cap) throw new GgufHeaderError(file, what, `${n} more bytes`, `end of ${size < LIMITS.header ? "file" : "header window"} at byte ${cap}`);
      const next = Math.min(cap, Math.max(headLen * 2, pos + n));
      const grown = Buffer.alloc(next);
      buf.copy(grown, 0, 0, headLen);
      fs.readSync(fd, grown, headLen, next - headLen, headLen);
      buf = grown;
      headLen = next;
    };
    const u32 = (what: string) => { need(4, what); const v = buf.readUInt32LE(pos); pos += 4; return v; };
    const u64 = (what: string) => { need(8, what); const v = buf.readBigUInt64LE(pos); pos += 8; return v; };
    const str = (what: string) => {
      const len = u64(`${what} length`);
      if (len > BigInt(LIMITS.string)) throw new GgufHeaderError(file, `${what} length`, `<= ${LIMITS.string}`, String(len));
      need(Number(len), what);
      const s = buf.toString("utf8", pos, pos + Number(len));
      pos += Number(len);
      return s;
    };
    // An array's strings (a vocabulary: up to ~250k) are bounds-checked but not decoded; labels only on a failure.
    const skipStr = (key: string, i: number) => {
      if (pos + 8 > headLen) need(8, `${key}[${i}] length`);
      const len = buf.readUInt32LE(pos) + buf.readUInt32LE(pos + 4) * 2 ** 32;
      if (len > LIMITS.string) throw new GgufHeaderError(file, `${key}[${i}] length`, `<= ${LIMITS.string}`, String(buf.readBigUInt64LE(pos)));
      pos += 8;
      if (pos + len > headLen) need(len, `${key}[${i}]`);
      pos += len;
    };
    const count = (v: bigint, limit: number, what: string) => {
      if (v > BigInt(limit)) throw new GgufHeaderError(file, what, `<= ${limit}`, String(v));
      return Number(v);
    };

    if (size < 24) throw new GgufHeaderError(file, "size", ">= 24 bytes", `${size} bytes`);
    need(24, "header");
    const magic = buf.toString("latin1", 0, 4);
    if (magic !== "GGUF") throw new GgufHeaderError(file, "magic", "'GGUF'", JSON.stringify(magic));
    pos = 4;
    const version = u32("version");
    if (version < 2 || version > 3) throw new GgufHeaderError(file, "version", "2 or 3", String(version));
    const nTensors = count(u64("tensor count"), LIMITS.tensors, "tensor count");
    const nKv = count(u64("kv count"), LIMITS.kv, "kv count");

    let alignment = 32, architecture: string | undefined, chatTemplate: string | undefined;
    const scalar = (n: number, key: string, read: (at: number) => number | bigint) => { need(n, key); const v = read(pos); pos += n; return Number(v); };
    const skipValue = (type: number, key: string, depth = 0): unknown => {
      switch (type) {
        case 0: case 7: need(1, key); return buf[pos++];
        case 1: return scalar(1, key, (at) => buf.readInt8(at));
        case 2: return scalar(2, key, (at) => buf.readUInt16LE(at));
        case 3: return scalar(2, key, (at) => buf.readInt16LE(at));
        case 4: return u32(key);
        case 5: return scalar(4, key, (at) => buf.readInt32LE(at));
        case 6: return scalar(4, key, (at) => buf.readFloatLE(at));
        case 10: return scalar(8, key, (at) => buf.readBigUInt64LE(at));
        case 11: return scalar(8, key, (at) => buf.readBigInt64LE(at));
        case 12: return scalar(8, key, (at) => buf.readDoubleLE(at));
        case 8: return str(key);
        case 9: {
          if (depth > 0) throw new GgufHeaderError(file, `value of ${key}`, "no nested arrays", "a nested array");
          const itemType = u32(`${key} item type`);
          const n = count(u64(`${key} length`), LIMITS.array, `${key} length`);
          const width = { 0: 1, 1: 1, 7: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 10: 8, 11: 8, 12: 8 }[itemType];
          if (width) { need(n * width, key); pos += n * width; }
          else if (itemType === 8) for (let i = 0; i < n; i++) skipStr(key, i);
          else throw new GgufHeaderError(file, `array type of ${key}`, "a known type", String(itemType));
          return undefined;
        }
        default: throw new GgufHeaderError(file, `value type of ${key}`, "0-12", String(type));
      }
    };
    const numbers = new Map<string, number>();
    for (let i = 0; i < nKv; i++) {
      const key = str(`key #${i}`);
      const v = skipValue(u32(`type of ${key}`), key);
      if (key === "general.alignment" && typeof v === "number") alignment = v;
      if (key === "general.architecture" && typeof v === "string") architecture = v;
      if (key === "tokenizer.chat_template" && typeof v === "string") chatTemplate = v;
      if (typeof v === "number") numbers.set(key, v);
    }
    if (architecture) checkHyperparameters(file, architecture, numbers);
    if (alignment <= 0 || alignment > 1 << 16 || (alignment & (alignment - 1)) !== 0) {
      throw new GgufHeaderError(file, "general.alignment", "a power of two <= 65536", String(alignment));
    }
    const tensors: { name: string; offset: bigint; bytes: bigint }[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = str(`tensor #${i} name`);
      const nd = u32(`${name} dims`);
      if (nd < 1 || nd > LIMITS.dims) throw new GgufHeaderError(file, `${name} dimension count`, `1-${LIMITS.dims}`, String(nd));
      let elems = 1n;
      for (let k = 0; k < nd; k++) {
        const d = u64(`${name} dim ${k}`);
        if (d === 0n || d > 1n << 40n) throw new GgufHeaderError(file, `${name} dim ${k}`, "1..2^40", String(d));
        elems *= d;
      }
      const type = u32(`${name} type`);
      const ts = TYPE_SIZE[type];
      if (!ts) throw new GgufHeaderError(file, `${name} type`, "a known ggml type", String(type));
      const offset = u64(`${name} offset`);
      if (offset % BigInt(alignment) !== 0n) throw new GgufHeaderError(file, `${name} offset`, `a multiple of ${alignment}`, String(offset));
      tensors.push({ name, offset, bytes: (elems / BigInt(ts[1])) * BigInt(ts[0]) });
    }
    const dataOffset = Math.ceil(pos / alignment) * alignment;
    for (const t of tensors) {
      const end = BigInt(dataOffset) + t.offset + t.bytes;
      if (end > BigInt(size)) {
        throw new GgufHeaderError(file, `tensor ${t.name} data range`, `to end within the file (${size} bytes)`, `end at byte ${end} (truncated?)`);
      }
    }
    return { version, tensors: nTensors, kv: nKv, architecture, dataOffset, chatTemplate };
  } finally {
    if (openFd === undefined) fs.closeSync(fd);
  }
}
