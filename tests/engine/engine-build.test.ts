/**
 * The local OpenMP engine (issue 11 item 3): `APPLIANCE_ENGINE=local bun run build` embeds our own llama.cpp build
 * (scripts/engine-build.ts, cached outside the repo) instead of node-llama-cpp's prebuilt libraries, and falls back
 * to the prebuilt ones with a loud line when it cannot build. The compiled binary loads the local libraries from its
 * verified native dir (exact contents, sha256 at every start), libgomp included.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { cachedEngineBuild } from "../../scripts/engine-build";
import { OMP_DEFAULTS } from "../../src/engine/engine-build-env";
import { tinyModel, tmpDir, untilListening } from "../helpers";

const repo = path.resolve(import.meta.dir, "../..");
const spawned: { kill(): void }[] = [];
afterAll(() => { for (const p of spawned) p.kill(); });

/** `bun scripts/build.ts --out FILE` with extra env; resolves to its exit code and stderr. */
async function runBuild(out: string, env: Record<string, string>) {
  const p = Bun.spawn([process.execPath, path.join(repo, "scripts/build.ts"), "--out", out], { cwd: repo, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  return { code, stderr };
}

test("APPLIANCE_ENGINE=local where cmake is missing: a loud line, and the prebuilt libraries are embedded", async () => {
  const work = tmpDir("appliance-engine-");
  // A PATH with bun and git only: no cmake, no compiler, no node.
  const bin = path.join(work, "bin");
  fs.mkdirSync(bin);
  for (const tool of ["git"]) fs.symlinkSync(Bun.which(tool)!, path.join(bin, tool));
  const out = path.join(work, "appliance");
  const r = await runBuild(out, { APPLIANCE_ENGINE: "local", PATH: bin });
  expect(r.stderr).toContain("!!! build: APPLIANCE_ENGINE=local but no local engine: cmake not found");
  expect(r.stderr).toContain("embedding node-llama-cpp's prebuilt libraries instead");
  expect(r.code).toBe(0);
  const version = Bun.spawnSync([out, "--version"], { env: { PATH: "/usr/bin:/bin", HOME: work } }).stdout.toString();
  expect(version).toContain("appliance ");
  expect(version).not.toContain("local OpenMP engine");
}, 240_000);

test("an unknown engine name is refused before building", async () => {
  const work = tmpDir("appliance-engine-");
  const r = await runBuild(path.join(work, "appliance"), { APPLIANCE_ENGINE: "fastest" });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("unknown engine fastest");
  expect(fs.existsSync(path.join(work, "appliance"))).toBe(false);
});

// The engine build itself takes 10-40 minutes on a small machine, so this part runs where it is cached
// (`bun scripts/engine-build.ts` once; the cache survives across runs and clones) and says so loudly otherwise.
const cached = await cachedEngineBuild();
if (!cached) console.warn("!!! tests/engine/engine-build: no cached local engine build (run `bun scripts/engine-build.ts` once): binary checks skipped");

describe.skipIf(!cached)("a binary built with the local engine", () => {
  test("its C and C++ code got ENGINE_COMPILER_FLAGS: libggml-cpu.so calls its own ggml_backend_is_cpu directly (no PLT slot)", () => {
    const slots = Bun.spawnSync(["readelf", "--relocs", "--wide", path.join(cached!.binsDir, cached!.folder, "libggml-cpu.so")]).stdout.toString();
    expect(slots).toContain("JUMP_SLOT");
    expect(slots).not.toMatch(/JUMP_SLOT.* ggml_backend_is_cpu\b/);
  });

  test("serves from the verified native dir with the OpenMP libraries (libgomp shipped beside them), and verify checks them", async () => {
    const work = tmpDir("appliance-engine-");
    const bin = path.join(work, "appliance");
    const r = await runBuild(bin, { APPLIANCE_ENGINE: "local" });
    expect(r.stderr).toContain(`build: embedding the local engine ${cached!.key.slice(0, 16)}`);
    expect(r.code).toBe(0);
    const env = { PATH: "/usr/bin:/bin", HOME: work };
    const run = (args: string[]) => Bun.spawnSync([bin, ...args], { cwd: work, env });
    expect(run(["--version"]).stdout.toString()).toContain("local OpenMP engine");
    const stateDir = path.join(work, "state");
    expect(run(["models", "add", await tinyModel(), "--name", "tiny", "--state-dir", stateDir]).exitCode).toBe(0);
    const created = run(["keys", "create", "--name", "engine", "--state-dir", stateDir]);
    expect(created.exitCode).toBe(0);
    const key = created.stdout.toString().trim();
    const serve = async (extraEnv: Record<string, string> = {}) => {
      const p = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "2"], { cwd: work, env: { ...env, ...extraEnv }, stdout: "pipe", stderr: "pipe" });
      spawned.push(p);
      const { port, log } = await untilListening(p, "local-engine serve");
      const native = JSON.parse(log().split("\n").find((l) => l.includes('"msg":"native libraries verified"'))!) as { omp?: Record<string, string> };
      return { proc: p, port, native };
    };
    // An operator's own OpenMP setting is kept (and reaches native code); otherwise ours are set before libgomp loads.
    const own = await serve({ OMP_WAIT_POLICY: "passive" });
    expect(own.native.omp).toEqual({ ...OMP_DEFAULTS, OMP_WAIT_POLICY: "passive" });
    own.proc.kill("SIGTERM");
    await own.proc.exited;
    const { proc, port, native } = await serve();
    expect(native.omp).toEqual({ ...OMP_DEFAULTS });
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    expect((await res.json() as { usage: { completion_tokens: number } }).usage.completion_tokens).toBeGreaterThan(0);
    // What the process really mapped: the local build's libraries from <stateDir>/native/<version>/, never the prebuilt.
    const maps = fs.readFileSync(`/proc/${proc.pid}/maps`, "utf8");
    const nativeRoot = fs.realpathSync(path.join(stateDir, "native"));
    const versions = fs.readdirSync(nativeRoot);
    expect(versions).toHaveLength(1);
    expect(versions[0]).toContain(`local-${cached!.key.slice(0, 16)}`);
    const dir = path.join(nativeRoot, versions[0]!, cached!.folder);
    expect(fs.readdirSync(dir).sort()).toEqual(cached!.files.map((f) => f.name).sort());
    for (const lib of ["libgomp.so.1", "libggml-cpu.so", "llama-addon.node"]) expect(maps).toContain(path.join(dir, lib));
    // libgomp comes from the shipped copy only, not from the system's GCC runtime.
    const gompPaths = new Set(maps.split("\n").filter((l) => l.endsWith("libgomp.so.1")).map((l) => l.slice(l.indexOf("/"))));
    expect([...gompPaths]).toEqual([path.join(dir, "libgomp.so.1")]);
    expect(maps).not.toContain("libggml-cpu-zen4.so");
    proc.kill("SIGTERM");
    await proc.exited;
    expect(run(["verify", "--state-dir", stateDir]).stdout.toString()).toMatch(/native\s+\S+ holds exactly the embedded libraries/);
    // A changed byte in the shipped libgomp is caught by verify (the next start rewrites it, as for every embedded file).
    const gomp = path.join(dir, "libgomp.so.1");
    fs.chmodSync(gomp, 0o600);
    fs.appendFileSync(gomp, "x");
    const bad = run(["verify", "--state-dir", stateDir]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout.toString()).toMatch(/libgomp\.so\.1: sha256 \w+ does not match/);
  }, 600_000);
});
