/**
 * The built engine's contents check, at its edges (review findings): a file named like an Object.prototype
 * property is still an unlisted file; a record naming a path instead of a file is refused; an empty version dir
 * (an install that stopped before its first file) is no engine, and serve, verify and the check agree on that.
 * Needs root: an engine dir is trusted only root-owned all the way up (not under /tmp).
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { selectEngine } from "../../src/engine/engine-select";
import { checkEngineDir, installEngine, versionDirOf } from "../../src/engine/engine-store";
import { NativeLibError } from "../../src/engine/native";
import { checkBuiltEngine } from "../../src/integrity/engine-check";

const root = process.geteuid?.() === 0;
if (!root) console.warn("engine-dir-check tests SKIPPED: they need root (a built engine is trusted only root-owned)");

const VERSION = "0.0.0-test";
const parents: string[] = [];
afterAll(() => { for (const d of parents) fs.rmSync(d, { recursive: true, force: true }); });

function parent() {
  const p = fs.mkdtempSync(path.join(os.homedir(), "appliance-engine-check-"));
  parents.push(p);
  return p;
}

/** An engine installed by installEngine from two small files; returns its engine dir and version dir. */
function installed() {
  const p = parent();
  const compiled = path.join(p, "compiled");
  fs.mkdirSync(compiled);
  fs.writeFileSync(path.join(compiled, "libllama.so"), "not really a library, but recorded like one");
  fs.writeFileSync(path.join(compiled, "llama-addon.node"), "addon bytes");
  const dir = path.join(p, "engine");
  installEngine(dir, compiled, { folder: "linux-x64", nlcVersion: VERSION, release: "test", commit: "0".repeat(40), gpu: false,
    portable: false, openmp: false, cmakeOptions: {}, compiler: "-", cmake: "-", seconds: 0, builtAt: new Date().toISOString() });
  return { dir, versionDir: versionDirOf(dir, VERSION) };
}

describe.skipIf(!root)("built engine dir check", () => {
  test("an intact install has no problems", () => {
    const { versionDir } = installed();
    const r = checkEngineDir(versionDir);
    expect(r.problems).toEqual([]);
    expect(r.records.map((x) => x.folder)).toEqual(["linux-x64"]);
  });

  test("files named toString / hasOwnProperty / __proto__ in the folder are unlisted files", () => {
    const { versionDir } = installed();
    for (const name of ["toString", "hasOwnProperty", "__proto__"]) fs.writeFileSync(path.join(versionDir, "linux-x64", name), "x");
    const { problems } = checkEngineDir(versionDir);
    for (const name of ["toString", "hasOwnProperty", "__proto__"]) expect(problems.some((p) => p.includes(`/linux-x64/${name} is not one of`))).toBe(true);
  });

  test("a record naming a path instead of a file name is refused", () => {
    const { versionDir } = installed();
    const recordFile = path.join(versionDir, "linux-x64.json");
    const record = JSON.parse(fs.readFileSync(recordFile, "utf8"));
    record.files["../linux-x64.json"] = "0".repeat(64);
    fs.chmodSync(recordFile, 0o644);
    fs.writeFileSync(recordFile, JSON.stringify(record));
    const { problems, records } = checkEngineDir(versionDir);
    expect(records).toEqual([]);
    expect(problems.join("\n")).toContain("is not a plain file name");
  });

  test("an empty version dir is no engine: auto runs embedded, built refuses, verify skips", () => {
    const p = parent();
    const dir = path.join(p, "engine");
    fs.mkdirSync(versionDirOf(dir, VERSION), { recursive: true, mode: 0o755 });
    expect(selectEngine({ use: "auto", dir }, VERSION).engine).toBe("embedded");
    expect(() => selectEngine({ use: "built", dir }, VERSION)).toThrow(NativeLibError);
    const check = checkBuiltEngine({ engine: { use: "auto", dir } }, VERSION);
    expect(check.status).toBe("skip");
    expect(checkBuiltEngine({ engine: { use: "built", dir } }, VERSION).status).toBe("fail");
  });

  test("a version dir with something unlisted in it still stops the start under auto", () => {
    const p = parent();
    const dir = path.join(p, "engine");
    const versionDir = versionDirOf(dir, VERSION);
    fs.mkdirSync(path.join(versionDir, "linux-x64"), { recursive: true, mode: 0o755 });
    expect(() => selectEngine({ use: "auto", dir }, VERSION)).toThrow(NativeLibError);
    expect(checkBuiltEngine({ engine: { use: "auto", dir } }, VERSION).status).toBe("fail");
  });
});

describe("engine.dir", () => {
  // It is rendered into the unit's ExecPaths= (space-separated) and an AppArmor rule (globs): only plain absolute paths.
  test.each(["engine", "/usr/local/lib/app engine", "/opt/x\nExecStartPre=/bin/sh", "/opt/*", "/opt/{a,b}", "/opt/../var/lib", "/opt/'x'"])(
    "%j is refused", (dir) => {
      expect(() => parseConfig({ engine: { dir } })).toThrow(/engine\.dir/);
    });
  test("the default and a plain absolute path are accepted", () => {
    expect(parseConfig({}).engine.dir).toBe("/usr/local/lib/appliance/engine");
    expect(parseConfig({ engine: { dir: "/opt/appliance-engine_2.x" } }).engine.dir).toBe("/opt/appliance-engine_2.x");
  });
});
