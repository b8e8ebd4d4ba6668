/**
 * The compiled program loads none of Bun's stream-based Node built-ins (scripts/build-lazy-builtins.ts,
 * src/util/node-builtins.ts): every import of an external module in a chunk is evaluated when the chunk loads. The
 * program is bundled here unsplit, with the build's own plugin (not compiled), so its one chunk holds every module (a
 * superset of any chunk the binary's code splitting makes), and its top-level imports are read.
 * The dependency rewrites keep what they export.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { linuxPlugin } from "../../scripts/build";
import { lazyBuiltins, lazyFsExtraIndex, rewriteImport, REWRITES } from "../../scripts/build-lazy-builtins";
import { plainFs } from "../../scripts/build-nlc-trim";
import { tmpDir } from "../helpers";

const root = path.resolve(import.meta.dir, "../..");
const nodeModules = path.join(root, "node_modules");
/** Loading any of these loads node:stream (Bun writes them in JavaScript over it). */
const STREAM_BASED = ["crypto", "net", "dgram", "tty", "child_process", "stream", "http", "https", "zlib", "readline"];

test("the program's chunk imports none of the stream-based built-ins at load", async () => {
  const dir = tmpDir();
  const r = await Bun.build({ entrypoints: [path.join(root, "src", "main.ts")], target: "bun", format: "esm", outdir: dir,
    plugins: [linuxPlugin()], external: ["@reflink/reflink"] });
  expect(r.logs.filter((l) => l.level === "error")).toEqual([]);
  const chunk = fs.readFileSync(path.join(dir, "main.js"), "utf8");
  const imported = new Set([...chunk.matchAll(/^import [^;]*? from "([^".][^"]*)";?$/gm)].map((m) => m[1]!.replace(/^node:/, "")));
  expect(imported.has("fs") && imported.has("path")).toBe(true); // the check reads the imports at all
  expect(STREAM_BASED.filter((b) => imported.has(b))).toEqual([]);
});

test("each rewrite replaces one line of the installed file; a changed file stops the build", () => {
  for (const file of Object.keys(REWRITES)) {
    const source = fs.readFileSync(path.join(nodeModules, file), "utf8");
    const out = rewriteImport(file, source);
    expect(out).not.toContain(REWRITES[file]![0]);
    expect(out).toContain("scripts/build-lazy-builtins.ts");
    expect(() => rewriteImport(file, source.replace(REWRITES[file]![0], ""))).toThrow(`${file} changed`);
  }
  expect(() => lazyFsExtraIndex("module.exports = require('./fs')\n")).toThrow("fs-extra/lib/index.js changed");
});

test("fs-extra built with the rewrites exports what it did, and reads none of fs's accessors until asked", async () => {
  const dir = tmpDir();
  const build = async (name: string, plugins: Parameters<typeof Bun.build>[0]["plugins"]) => {
    const r = await Bun.build({ entrypoints: [require.resolve("fs-extra")], target: "bun", format: "cjs", outdir: dir, naming: name, plugins });
    expect(r.success).toBe(true);
    return path.join(dir, name);
  };
  const plain = { name: "plain-fs", setup: plainFs };
  const before = await build("fx-before.cjs", [plain]);
  const after = await build("fx-after.cjs", [plain, { name: "lazy", setup: (b) => lazyBuiltins(b, nodeModules) }]);
  const accessors = ["ReadStream", "WriteStream", "promises"] as const;
  const saved = accessors.map((k) => [k, Object.getOwnPropertyDescriptor(fs, k)!] as const);
  const reads: string[] = [];
  try {
    // Bun defines them as accessors; this process may have read one already (then it is a plain value).
    for (const [k, d] of saved) Object.defineProperty(fs, k, { configurable: true, enumerable: d.enumerable, get() { reads.push(k); return d.get ? d.get.call(fs) : d.value; } });
    const fx = require(after) as Record<string | symbol, unknown>;
    expect(reads).toEqual([]); // loading it read none
    const untrimmed = require(before) as Record<string | symbol, unknown>;
    expect(reads.length).toBeGreaterThan(0); // what the rewrite exists for: the plain build reads them at load
    expect(Object.keys(fx).sort()).toEqual(Object.keys(untrimmed).sort());
    for (const k of Object.keys(untrimmed)) if (typeof untrimmed[k] !== "function") expect([k, fx[k]]).toEqual([k, untrimmed[k]]);
    expect(fx.WriteStream).toBe(fs.WriteStream);
    fs.writeFileSync(path.join(dir, "a.json"), '{"a":1}');
    expect(await (fx.readJson as (p: string) => Promise<unknown>)(path.join(dir, "a.json"))).toEqual({ a: 1 });
  } finally {
    for (const [k, d] of saved) Object.defineProperty(fs, k, d);
  }
});
