/**
 * The build's node-llama-cpp and prom-client trims (scripts/build-nlc-trim.ts): the stubs throw naming their package when called,
 * and getTempDir.js's run id is made at first use. Whether any server path reaches a stub is tested by running the
 * conformance and e2e suites on the compiled binary (a stub throws, so a reached one fails them).
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { DETECT_GLIBC, fastArrays, lazyRunId, noClonedRepo, PLAIN_FS, plainFs, PUSHGATEWAY_STUB, stubModule } from "../../scripts/build-nlc-trim";
import { tmpDir } from "../helpers";

const getTempDir = path.resolve(import.meta.dir, "../../node_modules/node-llama-cpp/dist/utils/getTempDir.js");

test("each stub exports what node-llama-cpp imports, and calling it throws naming the package", async () => {
  const dir = tmpDir();
  const load = async (pkg: string) => {
    const file = path.join(dir, `${pkg}.mjs`);
    fs.writeFileSync(file, stubModule(pkg));
    return await import(file) as Record<string, unknown>;
  };
  const calls: [string, () => unknown][] = [];
  const ora = await load("ora"), git = await load("simple-git"), ipull = await load("ipull"), out = await load("stdout-update");
  calls.push(["ora", ora.default as () => unknown], ["simple-git", git.simpleGit as () => unknown],
    ["ipull", ipull.downloadFile as () => unknown], ["ipull", ipull.downloadSequence as () => unknown],
    ["stdout-update", (out.default as { getInstance: () => unknown }).getInstance], ["slice-ansi", (await load("slice-ansi")).default as () => unknown]);
  for (const [pkg, fn] of calls) expect(fn).toThrow(`${pkg} is not in the compiled binary`);
  expect(() => stubModule("chalk")).toThrow("no stub for chalk");
  const push = path.join(dir, "pushgateway.cjs");
  fs.writeFileSync(push, PUSHGATEWAY_STUB);
  const Pushgateway = require(push) as new () => unknown;
  expect(() => new Pushgateway()).toThrow("Pushgateway is not in the compiled binary");
});

test("getTempDir.js: no Date is made at import, the run id is made once at first use, a changed file stops the build", () => {
  const source = fs.readFileSync(getTempDir, "utf8");
  expect(source).toMatch(/^const currentDate = new Date\(\);$/m); // what the trim exists for
  const out = lazyRunId(source);
  expect(out).not.toMatch(/^const currentDate/m);
  expect(out).toContain("const currentRunIdOf = () => currentRunIdMemo ??= (() => { const currentDate = new Date(); return [");
  expect(out).not.toMatch(/\bcurrentRunId\b/); // every use goes through currentRunIdOf()
  expect(out.match(/currentRunIdOf\(\)/g)!.length).toBe(source.match(/\bcurrentRunId\b/g)!.length - 1);
  expect(() => lazyRunId(source.replace("new Date()", "new Date(Date.now())"))).toThrow("getTempDir.js changed");
});

test("detectGlibc in the binary: true on Linux (the binary is a glibc executable), false elsewhere as before", async () => {
  const file = path.join(tmpDir(), "detect-glibc.mjs");
  fs.writeFileSync(file, DETECT_GLIBC);
  const { detectGlibc } = await import(file) as { detectGlibc: (o: { platform: string }) => Promise<boolean> };
  expect(await detectGlibc({ platform: "linux" })).toBe(true);
  expect(await detectGlibc({ platform: "darwin" })).toBe(false);
  // Only that one export is replaced: the original module exports nothing else.
  const original = fs.readFileSync(path.resolve(import.meta.dir, "../../node_modules/node-llama-cpp/dist/bindings/utils/detectGlibc.js"), "utf8");
  expect(original.match(/^export .*/gm)).toEqual(["export async function detectGlibc({ platform }) {"]);
});

test("GgufV2Parser.js: arrays are asked of the file reader first, once; a changed file stops the build", () => {
  const file = path.resolve(import.meta.dir, "../../node_modules/node-llama-cpp/dist/gguf/parser/GgufV2Parser.js");
  const out = fastArrays(fs.readFileSync(file, "utf8"));
  expect(out.match(/this\._fileReader\.readArray\?\.\(readOffset, arrayType, arrayLength\)/g)).toHaveLength(1);
  expect(out.indexOf("readArray?.")).toBeLessThan(out.indexOf("const arrayValues = [];"));
  expect(() => fastArrays("export class GgufV2Parser {}")).toThrow(/GgufV2Parser\.js changed/);
});

test("cloneLlamaCppRepo.js in the binary: no clone, answered without looking; a changed file stops the build", async () => {
  const file = path.resolve(import.meta.dir, "../../node_modules/node-llama-cpp/dist/bindings/utils/cloneLlamaCppRepo.js");
  const out = noClonedRepo(fs.readFileSync(file, "utf8"));
  expect(out).toContain("export async function getClonedLlamaCppRepoReleaseInfo() {\n    return null;");
  expect(out).toContain("export async function isLlamaCppRepoCloned(waitForLock = true) {\n    return false;");
  expect(() => noClonedRepo("export async function isLlamaCppRepoCloned() {}")).toThrow(/cloneLlamaCppRepo\.js changed/);
});

test("plainFs: fs-extra built with the trim carries no graceful-fs (node:fs instead) and still works", async () => {
  const dir = tmpDir();
  const entry = require.resolve("fs-extra");
  const build = async (plugins: Parameters<typeof Bun.build>[0]["plugins"]) => {
    const r = await Bun.build({ entrypoints: [entry], target: "bun", format: "cjs", outdir: dir, naming: `fx-${plugins?.length ?? 0}.cjs`, plugins });
    expect(r.success).toBe(true);
    return fs.readFileSync(r.outputs[0]!.path, "utf8");
  };
  expect(await build([])).toContain("gracefulQueue"); // graceful-fs is in it untrimmed: what the trim removes
  const trimmed = await build([{ name: "plain-fs", setup: plainFs }]);
  expect(trimmed).not.toContain("gracefulQueue");
  const fx = require(path.join(dir, "fx-1.cjs")) as { pathExists: (p: string) => Promise<boolean>; readJson: (p: string) => Promise<unknown> };
  fs.writeFileSync(path.join(dir, "a.json"), '{"a":1}');
  expect([await fx.pathExists(path.join(dir, "a.json")), await fx.pathExists(path.join(dir, "none")), await fx.readJson(path.join(dir, "a.json"))]).toEqual([true, false, { a: 1 }]);
  expect(PLAIN_FS).toBe('module.exports = require("fs");\n');
});
