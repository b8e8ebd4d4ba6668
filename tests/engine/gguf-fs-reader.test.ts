/**
 * The GGUF header reader the compiled binary uses in place of node-llama-cpp's (src/engine/gguf-fs-reader.ts, put in
 * place by scripts/build.ts): node-llama-cpp's own parser reads the same header through it as through the original
 * reader, reading about what the header needs (the original reads 4 MiB past it), and a header cut short fails.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { GgufType, writeGguf } from "../../src/engine/gguf-writer";
import { FIRST_READ, ggufFsReader } from "../../src/engine/gguf-fs-reader";
import { tinyModel, tmpDir } from "../helpers";


// node-llama-cpp's internal modules, exactly those scripts/build.ts hands to the reader in the binary.
const gguf = path.join(import.meta.dir, "..", "..", "node_modules", "node-llama-cpp", "dist", "gguf");
const { GgufFileReader } = await import(path.join(gguf, "fileReaders", "GgufFileReader.js"));
const { GgufReadOffset } = await import(path.join(gguf, "utils", "GgufReadOffset.js"));
const { parseGguf } = await import(path.join(gguf, "parser", "parseGguf.js"));
const Reader = ggufFsReader(GgufFileReader, GgufReadOffset);

/**
 * What both readers must agree on. Not `source`/`sourceData`: parseGguf describes the source by path only for an
 * instance of its own GgufFsFileReader class, which in the binary is this reader, here the original.
 */
const essence = (info: Record<string, unknown>) => JSON.stringify({ ...info, source: undefined, sourceData: undefined },
  (_k, v) => (typeof v === "bigint" ? `${v}n` : v));

/** A GGUF whose header is ~`kib` KiB: a vocabulary of long token strings, one small tensor. */
async function bigHeader(kib: number): Promise<string> {
  const file = path.join(tmpDir(), "big.gguf");
  const tokens = Array.from({ length: Math.ceil((kib * 1024) / 40) }, (_, i) => `token-${i}-${"x".repeat(20)}`);
  await writeGguf(file, {
    "general.architecture": { type: GgufType.STRING, value: "llama" },
    "tokenizer.ggml.tokens": { type: GgufType.ARRAY, itemType: GgufType.STRING, value: tokens },
  }, [{ name: "token_embd.weight", dims: [8, 4], fill: (out) => out.fill(0.5) }]);
  return file;
}

describe("GGUF header reader of the compiled binary", () => {
  test("parses the tiny model exactly as node-llama-cpp's reader does, reading one 64 KiB part", async () => {
    const file = await tinyModel();
    const reader = new Reader({ filePath: file });
    const ours = await parseGguf({ fileReader: reader });
    expect(essence(ours)).toBe(essence(await readGgufFileInfo(file, { sourceType: "filesystem" })));
    expect(ours.tensorInfo.length).toBeGreaterThan(0);
    expect(ours.infoEndOffset).toBeLessThan(FIRST_READ);
    expect(reader.bytesRead).toBe(FIRST_READ); // the original reads 4 MiB + what is asked
  });

  test("a header larger than the first read: the buffer doubles and the parse still matches", async () => {
    const file = await bigHeader(600);
    const reader = new Reader({ filePath: file });
    const ours = await parseGguf({ fileReader: reader });
    expect(essence(ours)).toBe(essence(await readGgufFileInfo(file, { sourceType: "filesystem" })));
    expect(ours.infoEndOffset).toBeGreaterThan(8 * FIRST_READ); // several doublings
    expect(reader.bytesRead).toBeLessThanOrEqual(Math.max(2 * ours.infoEndOffset, fs.statSync(file).size));
    expect(reader.bytesRead).toBeLessThan(4 * 1024 * 1024);
  });

  // The binary's parser asks readArray for a whole array (scripts/build-nlc-trim.ts fastArrays): same values, same offset.
  test("readArray gives exactly what reading the elements one by one gives, for every element type", async () => {
    const file = path.join(tmpDir(), "bytes.bin");
    const strings = ["", "a", "héllo", "日本語", "\u{1F600}", "x".repeat(300)];
    const parts = strings.flatMap((t) => { const b = Buffer.from(t); const n = Buffer.alloc(8); n.writeBigUInt64LE(BigInt(b.length)); return [n, b]; });
    parts.push(Buffer.from([2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe])); // invalid UTF-8 decodes as the one-by-one read does
    const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24));
    fs.writeFileSync(file, Buffer.concat([...parts, random]));
    const one: Record<number, string> = { 0: "readUint8", 1: "readInt8", 2: "readUint16", 3: "readInt16", 4: "readUint32", 5: "readInt32",
      6: "readFloat32", 7: "readBool", 8: "readString", 10: "readUint64", 11: "readInt64", 12: "readFloat64" };
    for (const [type, method] of Object.entries(one)) {
      const [count, start] = Number(type) === 8 ? [strings.length + 1, 0] : [200, 7];
      const fast = new Reader({ filePath: file }), slow = new Reader({ filePath: file });
      const at = new GgufReadOffset(start), at2 = new GgufReadOffset(start);
      const values = fast.readArray(at, Number(type), BigInt(count));
      const expected = Array.from({ length: count }, () => slow[method](at2));
      expect(values).toEqual(expected);
      expect(at.offset).toBe(at2.offset);
    }
    expect(new Reader({ filePath: file }).readArray(0, 9, 1n)).toBeUndefined(); // nested arrays: the parser's own path
  });

  test("a header cut short is an error naming the file, not a parse of zeros", async () => {
    const whole = fs.readFileSync(await bigHeader(200));
    const file = path.join(tmpDir(), "cut.gguf");
    fs.writeFileSync(file, whole.subarray(0, 100 * 1024));
    await expect(parseGguf({ fileReader: new Reader({ filePath: file }) })).rejects.toThrow(/cut\.gguf: the GGUF header runs past the end of the file/);
  });
});
