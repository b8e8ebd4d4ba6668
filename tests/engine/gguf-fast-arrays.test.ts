/**
 * node-llama-cpp's GGUF parser as the compiled binary has it (scripts/build-nlc-trim.ts fastArrays; here its patched
 * source is written to a temp file importing the package's own modules): with the binary's file reader it reads each
 * array in one call (readArray), and the parse equals the unpatched parser's with node-llama-cpp's own reader.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { fastArrays } from "../../scripts/build-nlc-trim";
import { ggufFsReader } from "../../src/engine/gguf-fs-reader";
import { GgufType, writeGguf } from "../../src/engine/gguf-writer";
import { tinyModel, tmpDir } from "../helpers";

const parser = path.join(import.meta.dir, "..", "..", "node_modules", "node-llama-cpp", "dist", "gguf", "parser");
const patched = path.join(tmpDir(), "GgufV2Parser.mjs");
fs.writeFileSync(patched, fastArrays(fs.readFileSync(path.join(parser, "GgufV2Parser.js"), "utf8"))
  .replace(/from "(\.\.?\/[^"]+)"/g, (_m, rel: string) => `from ${JSON.stringify(path.join(parser, rel))}`));
const { GgufV2Parser: FastParser } = await import(patched);
const { GgufV2Parser } = await import(path.join(parser, "GgufV2Parser.js"));
const { GgufFileReader } = await import(path.join(parser, "..", "fileReaders", "GgufFileReader.js"));
const { GgufFsFileReader } = await import(path.join(parser, "..", "fileReaders", "GgufFsFileReader.js"));
const { GgufReadOffset } = await import(path.join(parser, "..", "utils", "GgufReadOffset.js"));
const Reader = ggufFsReader(GgufFileReader, GgufReadOffset);
const parse = (P: typeof GgufV2Parser, fileReader: unknown) => new P({ fileReader, readOffset: new GgufReadOffset(8) }).parse();
const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x));

test("the patched parser reads arrays through readArray and parses exactly as element by element", async () => {
  const mixed = path.join(tmpDir(), "mixed.gguf");
  await writeGguf(mixed, {
    "general.architecture": { type: GgufType.STRING, value: "llama" },
    "tokenizer.ggml.tokens": { type: GgufType.ARRAY, itemType: GgufType.STRING, value: ["a", "héllo", "日本", ""] },
    "tokenizer.ggml.scores": { type: GgufType.ARRAY, itemType: GgufType.FLOAT32, value: [0.5, -1.25, 3e7, 0] },
    "tokenizer.ggml.token_type": { type: GgufType.ARRAY, itemType: GgufType.INT32, value: [1, 2, -3, 6] },
  }, [{ name: "token_embd.weight", dims: [8, 4], fill: (out) => out.fill(0.5) }]);
  for (const file of [await tinyModel(), mixed]) {
    const reader = new Reader({ filePath: file });
    let calls = 0;
    const readArray = reader.readArray.bind(reader);
    reader.readArray = (...args: Parameters<typeof readArray>) => { calls++; return readArray(...args); };
    const fast = await parse(FastParser, reader);
    expect(calls).toBeGreaterThanOrEqual(3);
    const slow = await parse(GgufV2Parser, new GgufFsFileReader({ filePath: file }));
    expect(json(fast)).toBe(json(slow));
    expect(fast.metadata.tokenizer.ggml.tokens.length).toBeGreaterThan(3);
  }
});
