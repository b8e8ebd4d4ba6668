/**
 * Minimal GGUF v3 writer: just enough of the format to emit the tiny
 * random-weight test models. Kept apart from the model recipe so the
 * integrity tests can reuse it to craft bad files.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian

export enum GgufType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

export type KvValue =
  | { type: GgufType.STRING; value: string }
  | { type: GgufType.UINT32 | GgufType.INT32 | GgufType.FLOAT32 | GgufType.UINT64; value: number }
  | { type: GgufType.BOOL; value: boolean }
  | { type: GgufType.ARRAY; itemType: GgufType.STRING; value: string[] }
  | { type: GgufType.ARRAY; itemType: GgufType.FLOAT32 | GgufType.INT32; value: number[] };

export interface TensorSpec {
  name: string;
  /** ggml order: dims[0] is the innermost (row length). */
  dims: number[];
  /** F32 data, produced lazily so big models need not sit in memory twice. */
  fill: (out: Float32Array) => void;
}

class ByteSink {
  private chunks: Uint8Array[] = [];
  length = 0;
  push(bytes: Uint8Array) { this.chunks.push(bytes); this.length += bytes.length; }
  u32(v: number) { const b = new DataView(new ArrayBuffer(4)); b.setUint32(0, v, true); this.push(new Uint8Array(b.buffer)); }
  i32(v: number) { const b = new DataView(new ArrayBuffer(4)); b.setInt32(0, v, true); this.push(new Uint8Array(b.buffer)); }
  f32(v: number) { const b = new DataView(new ArrayBuffer(4)); b.setFloat32(0, v, true); this.push(new Uint8Array(b.buffer)); }
  u64(v: number) { const b = new DataView(new ArrayBuffer(8)); b.setBigUint64(0, BigInt(v), true); this.push(new Uint8Array(b.buffer)); }
  str(s: string) { const bytes = new TextEncoder().encode(s); this.u64(bytes.length); this.push(bytes); }
  bytes(): Uint8Array { return Buffer.concat(this.chunks); }
}

function writeValue(sink: ByteSink, v: KvValue) {
  switch (v.type) {
    case GgufType.STRING: sink.str(v.value); break;
    case GgufType.UINT32: sink.u32(v.value); break;
    case GgufType.INT32: sink.i32(v.value); break;
    case GgufType.FLOAT32: sink.f32(v.value); break;
    case GgufType.UINT64: sink.u64(v.value); break;
    case GgufType.BOOL: sink.push(new Uint8Array([v.value ? 1 : 0])); break;
    case GgufType.ARRAY:
      sink.u32(v.itemType);
      sink.u64(v.value.length);
      for (const item of v.value) {
        if (v.itemType === GgufType.STRING) sink.str(item as string);
        else if (v.itemType === GgufType.FLOAT32) sink.f32(item as number);
        else sink.i32(item as number);
      }
      break;
  }
}

const ALIGN = 32;
const pad = (n: number) => (ALIGN - (n % ALIGN)) % ALIGN;

/** Writes a GGUF v3 file with F32 tensors. Returns the number of bytes written. */
export async function writeGguf(path: string, kv: Record<string, KvValue>, tensors: TensorSpec[]): Promise<number> {
  const head = new ByteSink();
  head.u32(GGUF_MAGIC);
  head.u32(3);
  head.u64(tensors.length);
  head.u64(Object.keys(kv).length);
  for (const [key, value] of Object.entries(kv)) {
    head.str(key);
    head.u32(value.type);
    writeValue(head, value);
  }
  let offset = 0;
  for (const t of tensors) {
    head.str(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(0); // GGML_TYPE_F32
    head.u64(offset);
    const size = t.dims.reduce((a, b) => a * b, 1) * 4;
    offset += size + pad(size);
  }
  head.push(new Uint8Array(pad(head.length)));

  const file = Bun.file(path).writer();
  file.write(head.bytes());
  let written = head.length;
  for (const t of tensors) {
    const data = new Float32Array(t.dims.reduce((a, b) => a * b, 1));
    t.fill(data);
    file.write(new Uint8Array(data.buffer));
    written += data.byteLength;
    const p = pad(data.byteLength);
    if (p) { file.write(new Uint8Array(p)); written += p; }
    await file.flush();
  }
  await file.end();
  return written;
}
