/**
 * A built engine checked at every start (issue 11 item 3): the compiled binary verifies every file of
 * <engine.dir>/<node-llama-cpp version>/ against the sha256 recorded by `appliance engine build` before any dlopen,
 * and loads it instead of the embedded libraries. The engine here is real files: node-llama-cpp's prebuilt
 * libraries for this platform installed by the same installEngine() the command uses (a real compile takes ~20 min;
 * see engine-build-real.test.ts). Needs root: the engine dir must be root-owned, as for the installed native libs.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EXIT } from "../../src/cli/exit-codes";
import { ENGINE_COMPILER_FLAGS } from "../../src/engine/engine-compile";
import { installEngine, versionDirOf } from "../../src/engine/engine-store";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";

const root = process.geteuid?.() === 0;
if (!root) console.warn("engine-start tests SKIPPED: they need root (a built engine is trusted only root-owned)");

const repo = path.resolve(import.meta.dir, "../..");
const nlcVersion = JSON.parse(fs.readFileSync(path.join(repo, "node_modules/node-llama-cpp/package.json"), "utf8")).version as string;
const prebuilt = path.join(repo, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");

const parents: string[] = [];
afterAll(() => { for (const d of parents) fs.rmSync(d, { recursive: true, force: true }); });

/** A root-owned engine dir (not under /tmp: every parent must be root-owned and not world-writable). */
function engineDir(cmakeOptions: Record<string, string> = {}): { dir: string; folder: string } {
  const parent = fs.mkdtempSync(path.join(os.homedir(), "appliance-engine-test-"));
  parents.push(parent);
  const dir = path.join(parent, "engine");
  installEngine(dir, prebuilt, { folder: "linux-x64", nlcVersion, release: "test", commit: "0".repeat(40), gpu: false, portable: true, openmp: false,
    cmakeOptions, compiler: "node-llama-cpp prebuilt", cmake: "-", seconds: 0, builtAt: new Date().toISOString() });
  return { dir, folder: path.join(versionDirOf(dir, nlcVersion), "linux-x64") };
}

/** The binary in its own dir with the tiny model added; serve() starts it with the engine settings as environment. */
async function appliance() {
  const dir = tmpDir("appliance-engine-start-");
  const bin = path.join(dir, "appliance"), stateDir = path.join(dir, "state"), model = path.join(dir, "tiny.gguf");
  fs.copyFileSync(await builtBinary(), bin);
  fs.copyFileSync(await tinyModel(), model);
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const add = Bun.spawnSync([bin, "models", "add", model, "--state-dir", stateDir], { env });
  if (add.exitCode !== 0) throw new Error(add.stderr.toString());
  const serve = (engine: Record<string, string>) => Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "2", "--no-auth"],
    { cwd: dir, env: { ...env, ...engine }, stdout: "pipe", stderr: "pipe" });
  const verify = (engine: Record<string, string>) => {
    const r = Bun.spawnSync([bin, "verify", "--json", "--skip-models", "--state-dir", stateDir], { cwd: dir, env: { ...env, ...engine }, stdout: "pipe" });
    return (JSON.parse(r.stdout.toString()) as { checks: { name: string; status: string; detail: string }[] }).checks.find((c) => c.name === "engine");
  };
  const status = (engine: Record<string, string>) => {
    const r = Bun.spawnSync([bin, "engine", "status", "--json"], { cwd: dir, env: { ...env, ...engine }, stdout: "pipe" });
    return { code: r.exitCode, json: JSON.parse(r.stdout.toString()) as { ok: boolean; built: { folder: string; outdated?: string }[]; problems?: string[] } };
  };
  const statusText = (engine: Record<string, string>) =>
    Bun.spawnSync([bin, "engine", "status"], { cwd: dir, env: { ...env, ...engine }, stdout: "pipe" }).stdout.toString();
  return { serve, verify, status, statusText };
}

/** A start that must be refused: its exit code and everything it wrote. */
async function refused(proc: ReturnType<Awaited<ReturnType<typeof appliance>>["serve"]>) {
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: out + err };
}

/** Writes into a root-owned 0444 file as root would (the tamperer), keeping owner and mode. */
function rewrite(file: string, edit: (b: Buffer) => void) {
  const b = fs.readFileSync(file);
  edit(b);
  fs.chmodSync(file, 0o644);
  fs.writeFileSync(file, b);
  fs.chmodSync(file, 0o444);
}

describe.skipIf(!root)("a built engine at start (compiled binary, as root)", () => {
  test("intact: verified, loaded instead of the embedded libraries (its files are the ones mapped), serves a chat", async () => {
    const { dir, folder } = engineDir();
    const proc = (await appliance()).serve({ APPLIANCE_ENGINE__DIR: dir, APPLIANCE_ENGINE__USE: "built" });
    try {
      const { port, log } = await untilListening(proc);
      const line = JSON.parse(log().split("\n").find((l) => l.includes('"msg":"engine"'))!);
      expect(line).toMatchObject({ engine: "built", dir: versionDirOf(dir, nlcVersion), builds: [{ folder: "linux-x64", files: fs.readdirSync(prebuilt).length }] });
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 }) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(4);
      const mapped = new Set(fs.readFileSync(`/proc/${proc.pid}/maps`, "utf8").split("\n").map((l) => l.split(/\s+/)[5] ?? "").filter((f) => /\.(so|node)$/.test(f)));
      const libllama = fs.readdirSync(prebuilt).find((f) => f.startsWith("libllama."))!;
      expect([...mapped].filter((f) => /llama-addon\.node$|libllama\./.test(f)).sort()).toEqual([path.join(folder, libllama), path.join(folder, "llama-addon.node")]);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 120_000);

  test("one byte changed in a library: the start stops with the integrity exit code, naming the file (engine.use auto too)", async () => {
    const { dir, folder } = engineDir();
    rewrite(path.join(folder, "libggml-base.so"), (b) => { b[b.length >> 1]! ^= 0xff; });
    const r = await refused((await appliance()).serve({ APPLIANCE_ENGINE__DIR: dir }));
    expect(r.code).toBe(EXIT.FAIL);
    expect(r.out).toMatch(new RegExp(`${path.join(folder, "libggml-base.so").replace(/[.]/g, "\\.")}: sha256 [0-9a-f]{64} does not match the recorded [0-9a-f]{64}`));
    expect(r.out).not.toContain('"msg":"listening"');
  }, 60_000);

  test("verify (daily and before each service start) and engine status hash the built engine: ok, then fail naming a changed file", async () => {
    const { dir, folder } = engineDir();
    const app = await appliance();
    expect(app.verify({ APPLIANCE_ENGINE__DIR: dir })).toMatchObject({ status: "ok", detail: expect.stringContaining(versionDirOf(dir, nlcVersion)) });
    expect(app.status({ APPLIANCE_ENGINE__DIR: dir })).toMatchObject({ code: 0, json: { ok: true, built: [{ folder: "linux-x64" }], problems: [] } });
    rewrite(path.join(folder, "llama-addon.node"), (b) => { b[100]! ^= 1; });
    const after = app.status({ APPLIANCE_ENGINE__DIR: dir });
    expect(after.code).toBe(1);
    expect(after.json.problems).toEqual([expect.stringContaining(`${path.join(folder, "llama-addon.node")}: sha256`)]);
    expect(app.verify({ APPLIANCE_ENGINE__DIR: dir })).toMatchObject({ status: "fail", detail: expect.stringContaining(`${path.join(folder, "llama-addon.node")}: sha256`) });
    expect(app.verify({ APPLIANCE_ENGINE__DIR: dir, APPLIANCE_ENGINE__USE: "embedded" })).toMatchObject({ status: "skip" });
  }, 60_000);

  test("engine status says when an engine was built without this binary's compiler flags (an earlier binary's build), and not otherwise", async () => {
    const app = await appliance();
    const old = engineDir({ GGML_OPENMP: "ON", GGML_NATIVE: "ON" }).dir;
    const current = engineDir({ GGML_OPENMP: "ON", GGML_NATIVE: "ON", CMAKE_C_FLAGS: ENGINE_COMPILER_FLAGS, CMAKE_CXX_FLAGS: `-fexceptions ${ENGINE_COMPILER_FLAGS}` }).dir;
    const stale = app.status({ APPLIANCE_ENGINE__DIR: old });
    expect(stale).toMatchObject({ code: 0, json: { ok: true, built: [{ folder: "linux-x64", outdated: expect.stringContaining(`built without ${ENGINE_COMPILER_FLAGS}`) }] } });
    expect(app.statusText({ APPLIANCE_ENGINE__DIR: old })).toContain(`note: linux-x64 was built without ${ENGINE_COMPILER_FLAGS}`);
    const fresh = app.status({ APPLIANCE_ENGINE__DIR: current });
    expect(fresh).toMatchObject({ code: 0, json: { ok: true, built: [{ folder: "linux-x64" }] } });
    expect(fresh.json.built[0]).not.toHaveProperty("outdated");
    expect(app.statusText({ APPLIANCE_ENGINE__DIR: current })).not.toContain("note:");
  }, 60_000);

  test("a file the record does not list (a CPU variant ggml would dlopen): the start stops", async () => {
    const { dir, folder } = engineDir();
    fs.copyFileSync(path.join(folder, "libggml-cpu-x64.so"), path.join(folder, "libggml-cpu-extra.so"));
    const r = await refused((await appliance()).serve({ APPLIANCE_ENGINE__DIR: dir, APPLIANCE_ENGINE__USE: "built" }));
    expect(r.code).toBe(EXIT.FAIL);
    expect(r.out).toContain(`${path.join(folder, "libggml-cpu-extra.so")} is not one of the built engine's files`);
  }, 60_000);

  test("a library made writable by others: the start stops (root-owned, not group/other-writable, as the native libraries)", async () => {
    const { dir, folder } = engineDir();
    fs.chmodSync(path.join(folder, "llama-addon.node"), 0o666);
    const r = await refused((await appliance()).serve({ APPLIANCE_ENGINE__DIR: dir }));
    expect(r.code).toBe(EXIT.FAIL);
    expect(r.out).toContain(`${path.join(folder, "llama-addon.node")} must be root-owned and not writable by group or others`);
  }, 60_000);

  test("engine.use built without a built engine: no start; auto without one: the embedded libraries", async () => {
    const none = path.join(fs.mkdtempSync(path.join(os.homedir(), "appliance-engine-test-")), "engine");
    parents.push(path.dirname(none));
    const app = await appliance();
    const r = await refused(app.serve({ APPLIANCE_ENGINE__DIR: none, APPLIANCE_ENGINE__USE: "built" }));
    expect(r.code).toBe(EXIT.FAIL);
    expect(r.out).toContain(`no engine was built for node-llama-cpp ${nlcVersion} in ${none} (run: sudo appliance engine build)`);
    const proc = app.serve({ APPLIANCE_ENGINE__DIR: none });
    try {
      const { log } = await untilListening(proc);
      expect(JSON.parse(log().split("\n").find((l) => l.includes('"msg":"engine"'))!)).toMatchObject({ engine: "embedded", why: `no built engine in ${versionDirOf(none, nlcVersion)}` });
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 120_000);

  test("an empty version dir (an install stopped before its first file) is no engine: auto starts on the embedded libraries, verify skips, status ok", async () => {
    const empty = path.join(fs.mkdtempSync(path.join(os.homedir(), "appliance-engine-test-")), "engine");
    parents.push(path.dirname(empty));
    fs.mkdirSync(versionDirOf(empty, nlcVersion), { recursive: true, mode: 0o755 });
    const app = await appliance();
    expect(app.verify({ APPLIANCE_ENGINE__DIR: empty })).toMatchObject({ status: "skip" });
    expect(app.status({ APPLIANCE_ENGINE__DIR: empty })).toMatchObject({ code: 0, json: { ok: true, built: [] } });
    const proc = app.serve({ APPLIANCE_ENGINE__DIR: empty });
    try {
      const { log } = await untilListening(proc);
      expect(JSON.parse(log().split("\n").find((l) => l.includes('"msg":"engine"'))!)).toMatchObject({ engine: "embedded" });
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 120_000);
});
