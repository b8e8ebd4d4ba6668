/**
 * The built engine as users meet it, with the compiled binary (issue 11 item 3): which engine runs in /health
 * (auth off), /ready (a key that may list models) and /metrics, never in public /health with auth on; the GPU
 * preflight child verifying the engine serve chose (the reserved APPLIANCE_PREFLIGHT_ENGINE); `engine status`
 * listing engine.dir; `engine build` refusing non-root before it looks for tools; `uninstall` removing the built
 * engine it can prove is ours and nothing else. Needs root: an engine is trusted only root-owned all the way up.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EXIT } from "../../src/cli/exit-codes";
import { installEngine, versionDirOf } from "../../src/engine/engine-store";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";

const root = process.geteuid?.() === 0;
if (!root) console.warn("engine-info tests SKIPPED: they need root (a built engine is trusted only root-owned)");

const repo = path.resolve(import.meta.dir, "../..");
const nlcVersion = JSON.parse(fs.readFileSync(path.join(repo, "node_modules/node-llama-cpp/package.json"), "utf8")).version as string;
const prebuilt = path.join(repo, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");
const record = (v: string) => ({ folder: "linux-x64", nlcVersion: v, release: "test", commit: "0".repeat(40), gpu: false as const, portable: true,
  openmp: false, cmakeOptions: {}, compiler: "node-llama-cpp prebuilt", cmake: "-", seconds: 0, builtAt: new Date().toISOString() });

const parents: string[] = [];
afterAll(() => { for (const d of parents) fs.rmSync(d, { recursive: true, force: true }); });

/** A root-owned engine dir holding node-llama-cpp's prebuilt CPU libraries as a build for this binary's version. */
function engineDir(): string {
  const parent = fs.mkdtempSync(path.join(os.homedir(), "appliance-engine-info-"));
  parents.push(parent);
  const dir = path.join(parent, "engine");
  installEngine(dir, prebuilt, record(nlcVersion), { verify: true });
  return dir;
}

/** The binary in its own dir with the tiny model added and a key that may list models. */
async function appliance() {
  const dir = tmpDir("appliance-engine-info-");
  const bin = path.join(dir, "appliance"), stateDir = path.join(dir, "state"), model = path.join(dir, "tiny.gguf");
  fs.copyFileSync(await builtBinary(), bin);
  fs.copyFileSync(await tinyModel(), model);
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const run = (args: string[], extra: Record<string, string> = {}) => Bun.spawnSync([bin, ...args], { cwd: dir, env: { ...env, ...extra }, stdout: "pipe", stderr: "pipe" });
  expect(run(["models", "add", model, "--state-dir", stateDir]).exitCode).toBe(0);
  const key = run(["keys", "create", "--name", "ops", "--scopes", "models,metrics", "--state-dir", stateDir]).stdout.toString().trim();
  const serve = (flags: string[], extra: Record<string, string>) => Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "1", ...flags],
    { cwd: dir, env: { ...env, ...extra }, stdout: "pipe", stderr: "pipe" });
  return { dir, bin, stateDir, key, run, serve };
}

async function getJson(url: string, key?: string) {
  const r = await fetch(url, key ? { headers: { authorization: `Bearer ${key}` } } : {});
  return { status: r.status, body: await r.text() };
}

describe.skipIf(!root)("which engine runs, as the compiled binary says it", () => {
  test("auth off: /health and /metrics name the built engine (kind, folder, version; no path); without one: embedded", async () => {
    const dir = engineDir();
    const app = await appliance();
    for (const [env, kind] of [[{ APPLIANCE_ENGINE__DIR: dir }, "built"], [{ APPLIANCE_ENGINE__USE: "embedded", APPLIANCE_ENGINE__DIR: dir }, "embedded"]] as const) {
      const proc = app.serve(["--no-auth"], env);
      try {
        const { port } = await untilListening(proc);
        const health = await getJson(`http://127.0.0.1:${port}/health`);
        expect(health.status).toBe(200);
        expect(JSON.parse(health.body)).toEqual({ status: "ok", engine: { kind, folder: "linux-x64", version: nlcVersion } });
        expect(health.body).not.toContain(dir);
        const metrics = await getJson(`http://127.0.0.1:${port}/metrics`);
        expect(metrics.body).toContain(`appliance_engine_info{kind="${kind}",folder="linux-x64",version="${nlcVersion}"} 1`);
      } finally {
        proc.kill("SIGTERM");
        await proc.exited;
      }
    }
  }, 120_000);

  test("auth on: public /health says only ok; /ready names the engine to a key that may list models", async () => {
    const dir = engineDir();
    const app = await appliance();
    const proc = app.serve([], { APPLIANCE_ENGINE__DIR: dir });
    try {
      const { port } = await untilListening(proc);
      expect(JSON.parse((await getJson(`http://127.0.0.1:${port}/health`)).body)).toEqual({ status: "ok" });
      const ready = await getJson(`http://127.0.0.1:${port}/ready`, app.key);
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body)).toMatchObject({ status: "ready", models: ["tiny"], engine: { kind: "built", folder: "linux-x64", version: nlcVersion } });
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 120_000);

  test("the GPU preflight child verifies the engine serve chose, named by the reserved variable (not the operator's settings)", async () => {
    const dir = engineDir();
    const addon = path.join(versionDirOf(dir, nlcVersion), "linux-x64", "llama-addon.node");
    fs.chmodSync(addon, 0o644); fs.appendFileSync(addon, "x"); fs.chmodSync(addon, 0o444);
    const app = await appliance();
    const r = app.run(["gpu-preflight", "--gpu", "vulkan", "--state-dir", app.stateDir], { APPLIANCE_PREFLIGHT_ENGINE: dir });
    expect(r.exitCode).toBe(EXIT.FAIL);
    expect(r.stderr.toString()).toContain(`${addon}: sha256`);
  }, 60_000);
});

describe.skipIf(!root)("engine status, verify, engine build as non-root, uninstall", () => {
  test("engine status lists engine.dir: this binary's build, an older version's, and what is not ours", async () => {
    const dir = engineDir();
    // An older version's build (as left by the previous binary; kept for a rollback).
    fs.cpSync(versionDirOf(dir, nlcVersion), path.join(dir, "3.0.0"), { recursive: true });
    fs.mkdirSync(path.join(dir, "3.0.0-notes"));
    const app = await appliance();
    const r = app.run(["engine", "status", "--json"], { APPLIANCE_ENGINE__DIR: dir });
    expect(r.exitCode).toBe(0);
    const entries = (JSON.parse(r.stdout.toString()) as { entries: unknown[] }).entries;
    expect(entries).toEqual(expect.arrayContaining([
      { name: "3.0.0", ours: true, folders: ["linux-x64"], current: false },
      { name: "3.0.0-notes", ours: false, folders: [], why: "no engine record (<folder>.json)", current: false },
      { name: nlcVersion, ours: true, folders: ["linux-x64"], current: true },
    ]));
    const text = app.run(["engine", "status"], { APPLIANCE_ENGINE__DIR: dir }).stdout.toString();
    expect(text).toContain(`  ${nlcVersion} (this binary's): built engine(s) linux-x64\n`);
    expect(text).toContain("  3.0.0: built engine(s) linux-x64 for another node-llama-cpp version (not loaded by this binary; kept for a rollback's binary; uninstall removes it)\n");
    expect(text).toContain("  3.0.0-notes: not an engine build (no engine record (<folder>.json)); left alone\n");
  }, 60_000);

  test("verify before each start (--skip-models) decides with the root-written hash cache; the daily verify reads every byte", async () => {
    const dir = engineDir();
    const app = await appliance();
    const engineCheck = (args: string[]) => (JSON.parse(app.run(["verify", "--json", ...args, "--state-dir", app.stateDir], { APPLIANCE_ENGINE__DIR: dir }).stdout.toString()) as
      { checks: { name: string; status: string; detail: string }[] }).checks.find((c) => c.name === "engine");
    const n = fs.readdirSync(prebuilt).length;
    expect(engineCheck(["--skip-models"])).toMatchObject({ status: "ok", detail: expect.stringContaining(`(${n} of ${n} unchanged since root hashed them: from the root-written hash cache)`) });
    // Bytes changed under a cache entry that still matches the file's identity and times (only root can write one:
    // here the test, as root, forges it): the pre-start check trusts the entry, the daily check reads the bytes.
    const versionDir = versionDirOf(dir, nlcVersion), addon = path.join(versionDir, "linux-x64", "llama-addon.node");
    const recorded = JSON.parse(fs.readFileSync(path.join(versionDir, "linux-x64.json"), "utf8")).files["llama-addon.node"] as string;
    fs.chmodSync(addon, 0o644); fs.appendFileSync(addon, "x"); fs.chmodSync(addon, 0o444);
    expect(engineCheck(["--skip-models"])).toMatchObject({ status: "fail", detail: expect.stringContaining(`${addon}: sha256`) }); // a write changes ctime
    const cacheFile = path.join(versionDir, ".sha256-cache.json"), st = fs.statSync(addon, { bigint: true });
    const cache = JSON.parse(fs.readFileSync(cacheFile, "utf8"));
    cache.entries[addon] = { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), sha256: recorded };
    fs.writeFileSync(cacheFile, JSON.stringify(cache));
    expect(engineCheck(["--skip-models"])?.status).toBe("ok");
    expect(engineCheck([])).toMatchObject({ status: "fail", detail: expect.stringContaining(`${addon}: sha256`) });
  }, 60_000);

  const setpriv = !!Bun.which("setpriv");
  test.skipIf(!setpriv)("engine build as nobody with no build tools at all: the root message (exit 1), not the missing-tools one", async () => {
    const dir = tmpDir("appliance-engine-nonroot-");
    fs.chmodSync(dir, 0o755);
    const bin = path.join(dir, "appliance");
    fs.copyFileSync(await builtBinary(), bin);
    fs.chmodSync(bin, 0o755);
    const empty = path.join(dir, "empty-path");
    fs.mkdirSync(empty, { mode: 0o755 });
    const r = Bun.spawnSync(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "engine", "build"],
      { env: { PATH: empty, HOME: dir, TMPDIR: dir, APPLIANCE_ENGINE__DIR: path.join(dir, "engine") }, stderr: "pipe" });
    expect(r.stderr.toString()).toContain("appliance engine build: run it as root");
    expect(r.exitCode).toBe(EXIT.FAIL);
  }, 60_000);

  test("uninstall --root removes the built engine that is provably ours (engine.dir from the installed config), and leaves the rest", async () => {
    const rootDir = fs.mkdtempSync(path.join(os.homedir(), "appliance-engine-uninstall-"));
    parents.push(rootDir);
    const custom = path.join(rootDir, "opt/appliance-engine");
    installEngine(custom, prebuilt, record(nlcVersion));
    fs.mkdirSync(path.join(rootDir, "etc/appliance"), { recursive: true });
    fs.writeFileSync(path.join(rootDir, "etc/appliance/config.json"), JSON.stringify({ engine: { dir: "/opt/appliance-engine" } }));
    const kept = path.join(rootDir, "opt/appliance-engine/README.operator");
    fs.writeFileSync(kept, "mine");
    const r = Bun.spawnSync([await builtBinary(), "uninstall", "--root", rootDir, "--platform", "systemd"], { stdout: "pipe", stderr: "pipe" });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toContain(`remove ${path.join(custom, nlcVersion)}\n`);
    expect(fs.readdirSync(custom)).toEqual(["README.operator"]);
    // The default dir, under /usr/local/lib/appliance with the native libraries: an operator's file there survives too.
    fs.rmSync(path.join(rootDir, "etc/appliance/config.json"));
    const lib = path.join(rootDir, "usr/local/lib/appliance");
    installEngine(path.join(lib, "engine"), prebuilt, record(nlcVersion));
    fs.mkdirSync(path.join(lib, "native"));
    expect(Bun.spawnSync([await builtBinary(), "uninstall", "--root", rootDir, "--platform", "systemd"]).exitCode).toBe(0);
    expect(fs.existsSync(lib)).toBe(false);
    installEngine(path.join(lib, "engine"), prebuilt, record(nlcVersion));
    fs.writeFileSync(path.join(lib, "engine", "keep.txt"), "mine");
    expect(Bun.spawnSync([await builtBinary(), "uninstall", "--root", rootDir, "--platform", "systemd"]).exitCode).toBe(0);
    expect(fs.readdirSync(path.join(lib, "engine"))).toEqual(["keep.txt"]);
  }, 60_000);
});
