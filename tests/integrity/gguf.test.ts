/** Model integrity before llama.cpp parses a byte: manifest digests and the GGUF header check, on crafted files. */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { GgufType, writeGguf } from "../../src/engine/gguf-writer";
import { checkGgufHeader, GgufHeaderError } from "../../src/integrity/gguf-header";
import { readManifest } from "../../src/integrity/manifest";
import { resolveModels } from "../../src/integrity/resolve";
import { main } from "../../src/main";
import { tinyModel, tmpDir } from "../helpers";

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
const craft = (name: string, bytes: Buffer) => { const f = path.join(tmpDir(), name); fs.writeFileSync(f, bytes); return f; };

describe("GGUF header check", () => {
  test("the generated tiny model passes", async () => {
    const s = checkGgufHeader(await tinyModel());
    expect(s).toMatchObject({ version: 3, architecture: "llama" });
    expect(s.tensors).toBeGreaterThan(5);
  });
  const cases: [string, () => Buffer | Promise<Buffer>, RegExp][] = [
    ["bad magic", () => Buffer.concat([Buffer.from("GGML"), u32(3), u64(0n), u64(0n), Buffer.alloc(16)]), /magic: expected 'GGUF', got "GGML"/],
    ["unknown version", () => Buffer.concat([Buffer.from("GGUF"), u32(99), u64(0n), u64(0n), Buffer.alloc(16)]), /version: expected 2 or 3, got 99/],
    ["absurd tensor count", () => Buffer.concat([Buffer.from("GGUF"), u32(3), u64(1n << 60n), u64(0n), Buffer.alloc(16)]), /tensor count/],
    ["string length past the file", () => Buffer.concat([Buffer.from("GGUF"), u32(3), u64(0n), u64(1n), u64(1n << 40n), Buffer.alloc(16)]), /key #0 length/],
    ["too short", () => Buffer.from("GGUF"), /size: expected >= 24 bytes/],
    ["truncated tensor data", async () => fs.readFileSync(await tinyModel()).subarray(0, 100_000), /data range|truncated|end of file/],
  ];
  for (const [name, bytes, message] of cases) {
    test(`${name}: a clear error, no crash`, async () => {
      const file = craft("bad.gguf", await bytes());
      expect(() => checkGgufHeader(file)).toThrow(GgufHeaderError);
      expect(() => checkGgufHeader(file)).toThrow(message);
    });
  }
  // Array strings are skipped without decoding (a vocabulary); their lengths are still bounded, past a grown read window too.
  test("a vocabulary string with an absurd length, past the first read window", async () => {
    const file = path.join(tmpDir(), "vocab.gguf");
    const tokens = Array.from({ length: 20_000 }, (_, i) => `tok${i}`);
    await writeGguf(file, { "general.architecture": { type: GgufType.STRING, value: "llama" },
      "tokenizer.ggml.tokens": { type: GgufType.ARRAY, itemType: GgufType.STRING, value: tokens } }, [{ name: "zz", dims: [4], fill: (o) => o.fill(1) }]);
    expect(checkGgufHeader(file).tensors).toBe(1);
    const buf = fs.readFileSync(file);
    const at = buf.indexOf(Buffer.from("tok19999")) - 8; // the last token's u64 length
    buf.writeBigUInt64LE(1n << 40n, at);
    fs.writeFileSync(file, buf);
    expect(() => checkGgufHeader(file)).toThrow("tokenizer.ggml.tokens[19999] length: expected <= 16777216, got 1099511627776");
  });
  test("a tensor pointing outside the file", async () => {
    const file = path.join(tmpDir(), "oob.gguf");
    await writeGguf(file, { "general.architecture": { type: GgufType.STRING, value: "llama" } }, [{ name: "zz", dims: [4], fill: (o) => o.fill(1) }]);
    const buf = fs.readFileSync(file);
    const at = buf.indexOf(Buffer.from("zz")) + 2 + 4 + 8 + 4; // past name, n_dims, dim, type: the data offset
    buf.writeBigUInt64LE(1n << 20n, at);
    fs.writeFileSync(file, buf);
    expect(() => checkGgufHeader(file)).toThrow(/tensor zz data range/);
  });
});

describe("manifest", () => {
  test("models add writes sha256sum format that the OS tool verifies", async () => {
    const stateDir = tmpDir();
    expect(await main(["models", "add", await tinyModel(), "--name", "tiny", "--state-dir", stateDir])).toBe(0);
    const dir = path.join(stateDir, "models");
    expect(readManifest(dir)).toHaveLength(1);
    const r = Bun.spawnSync(["sha256sum", "-c", "CHECKSUMS.sha256"], { cwd: dir });
    expect(r.stdout.toString()).toContain("tiny.gguf: OK");
    expect(r.exitCode).toBe(0);
    expect(await main(["models", "remove", "tiny", "--state-dir", stateDir])).toBe(0);
    expect(readManifest(dir)).toHaveLength(0);
  });
  test("models add refuses a file that is not GGUF", async () => {
    expect(await main(["models", "add", craft("x.gguf", Buffer.from("not a model at all, really not")), "--state-dir", tmpDir()])).toBe(1);
  });
  test("serve refuses unlisted and mismatched files, names the file and both digests; --allow-unverified warns", async () => {
    const stateDir = tmpDir();
    const model = path.join(tmpDir(), "m.gguf");
    fs.copyFileSync(await tinyModel(), model);
    await expect(resolveModels(parseConfig({ stateDir, model: [model] }))).rejects.toThrow(/not in the manifest/);
    await main(["models", "add", model, "--state-dir", stateDir]);
    const listed = await resolveModels(parseConfig({ stateDir }));
    expect(listed.models.map((m) => m.id)).toEqual(["m"]);
    const installed = path.join(stateDir, "models", "m.gguf");
    fs.chmodSync(installed, 0o640);
    const bytes = fs.readFileSync(installed);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    fs.writeFileSync(installed, bytes);
    await expect(resolveModels(parseConfig({ stateDir }))).rejects.toThrow(/m\.gguf does not match the manifest: expected sha256 [0-9a-f]{64}, actual [0-9a-f]{64}/);
    const dev = await resolveModels(parseConfig({ stateDir, allowUnverified: true }));
    expect(dev.warnings[0]).toMatch(/allow-unverified/);
  });
  test("serve exits 4 (a failed integrity check: not restarted) for a crafted model, and the process survives it", async () => {
    const stateDir = tmpDir();
    const bad = craft("crafted.gguf", Buffer.concat([Buffer.from("GGUF"), u32(3), u64(1n), u64(0n), u64(5n), Buffer.from("short")]));
    expect(await main(["serve", "--state-dir", stateDir, "--model", bad, "--allow-unverified", "--port", "0"])).toBe(4);
    // The crafted file never reached the native parser: this process still works.
    expect(await main(["--version"])).toBe(0);
  });
});

test("the header check's ggml type sizes match the llama.cpp binding, type by type", async () => {
  const { TYPE_SIZE } = await import("../../src/integrity/gguf-header");
  const { getLlama } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never" });
  const bindings = (llama as unknown as { _bindings: { getTypeSizeForGgmlType(t: number): number; getBlockSizeForGgmlType(t: number): number } })._bindings;
  const fromLlama: Record<number, [number, number]> = {};
  for (let t = 0; t < 64; t++) {
    const size = bindings.getTypeSizeForGgmlType(t), block = bindings.getBlockSizeForGgmlType(t);
    if (size > 0 && block > 0) fromLlama[t] = [size, block];
  }
  await llama.dispose();
  expect(TYPE_SIZE).toEqual(fromLlama);
});
