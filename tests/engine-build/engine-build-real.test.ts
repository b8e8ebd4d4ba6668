/**
 * The real thing, end to end (issue 11 item 3): the compiled binary alone (copied into an empty dir, PATH without
 * node, npm or git) compiles its embedded llama.cpp source with cmake, installs the engine root-owned with its
 * sha256 record, and `serve` then runs on it (OpenMP: libgomp mapped from the engine dir) and answers a chat. The
 * addon carries the decode-thread patch (recorded; its decodes ran on the thread it names).
 * Takes ~12-20 min on 2 cores, so it runs only with APPLIANCE_TEST_ENGINE_BUILD=1, as root, where cmake and a
 * C/C++ compiler exist; otherwise it is skipped with a line saying why.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ENGINE_COMPILER_FLAGS } from "../../src/engine/engine-compile";
import { DECODE_THREAD_NAME, DECODE_THREAD_PATCH } from "../../src/engine/engine-decode-thread";
import type { EngineRecord } from "../../src/engine/engine-store";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";

const why = process.env.APPLIANCE_TEST_ENGINE_BUILD !== "1" ? "set APPLIANCE_TEST_ENGINE_BUILD=1 to run it (~20 min)"
  : process.geteuid?.() !== 0 ? "it needs root (the engine is installed root-owned)"
  : !(Bun.which("cmake") && Bun.which("c++") && Bun.which("cc") && (Bun.which("make") || Bun.which("ninja"))) ? "cmake, cc, c++ and make or ninja are needed"
  : !Bun.which("readelf") ? "readelf (binutils) is needed to read the built library's relocations"
  : null;
if (why) console.warn(`engine-build-real SKIPPED: ${why}`);

const parents: string[] = [];
afterAll(() => { for (const d of parents) fs.rmSync(d, { recursive: true, force: true }); });

/** A PATH with the build tools but not node, npm or git: links to exactly these. */
function buildPath(): string {
  const dir = tmpDir("appliance-engine-real-path-");
  for (const t of ["cmake", "cc", "c++", "gcc", "g++", "make", "ninja", "ldd", "as", "ld", "ar", "ranlib", "nice"]) {
    const found = Bun.which(t);
    if (found) fs.symlinkSync(found, path.join(dir, t));
  }
  return dir;
}

describe.skipIf(why !== null)("appliance engine build, for real", () => {
  test("compiles, installs root-owned with a record, and serve runs on it", async () => {
    const home = tmpDir("appliance-engine-real-");
    const bin = path.join(home, "appliance");
    fs.copyFileSync(await builtBinary(), bin);
    const parent = fs.mkdtempSync(path.join(os.homedir(), "appliance-engine-real-"));
    parents.push(parent);
    const engineDir = path.join(parent, "engine");
    const env = { PATH: buildPath(), HOME: home, APPLIANCE_ENGINE__DIR: engineDir, TMPDIR: home };
    const build = Bun.spawn([bin, "engine", "build"], { env, stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(build.stderr).text(), build.exited]);
    expect(code, err).toBe(0);
    expect(err).toMatch(/engine compile: \d+%/); // progress reached stderr
    const [version] = fs.readdirSync(engineDir);
    const versionDir = path.join(engineDir, version!);
    const record = JSON.parse(fs.readFileSync(path.join(versionDir, "linux-x64.json"), "utf8")) as EngineRecord;
    expect(record).toMatchObject({ folder: "linux-x64", openmp: true, gpu: false, cmakeOptions: { GGML_OPENMP: "ON", GGML_NATIVE: "ON" } });
    expect(record.patches).toContain(DECODE_THREAD_PATCH);
    expect(record.cmakeOptions).toMatchObject({ CMAKE_C_FLAGS: ENGINE_COMPILER_FLAGS, CMAKE_CXX_FLAGS: ENGINE_COMPILER_FLAGS });
    // The flag reached the compiler: ggml-cpu.cpp calls its own exported ggml_backend_is_cpu directly, so the library
    // has no PLT slot for it (built without the flag it has one).
    const slots = Bun.spawnSync(["readelf", "--relocs", "--wide", path.join(versionDir, "linux-x64", "libggml-cpu.so")]).stdout.toString();
    expect(slots).toContain("JUMP_SLOT");
    expect(slots).not.toMatch(/JUMP_SLOT.* ggml_backend_is_cpu\b/);
    expect(Object.keys(record.files)).toEqual(expect.arrayContaining(["llama-addon.node", "libgomp.so.1", "libggml-base.so", "_nlcBuildMetadata.json"]));
    for (const name of Object.keys(record.files)) {
      const st = fs.statSync(path.join(versionDir, "linux-x64", name));
      expect([name, st.uid, st.mode & 0o777]).toEqual([name, 0, 0o444]);
    }
    expect(fs.readdirSync(home).filter((f) => f.startsWith("appliance-engine-build-"))).toEqual([]); // the temp build dir is gone

    const stateDir = path.join(home, "state"), model = path.join(home, "tiny.gguf");
    fs.copyFileSync(await tinyModel(), model);
    expect(Bun.spawnSync([bin, "models", "add", model, "--state-dir", stateDir], { env }).exitCode).toBe(0);
    const serve = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--no-auth"], { env: { ...env, APPLIANCE_ENGINE__USE: "built" }, stdout: "pipe", stderr: "pipe" });
    try {
      const { port } = await untilListening(serve);
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }) });
      expect(res.status).toBe(200);
      const maps = fs.readFileSync(`/proc/${serve.pid}/maps`, "utf8");
      expect(maps).toContain(path.join(versionDir, "linux-x64", "libgomp.so.1"));
      expect(maps).toContain(path.join(versionDir, "linux-x64", "llama-addon.node"));
      const names = fs.readdirSync(`/proc/${serve.pid}/task`).map((t) => fs.readFileSync(`/proc/${serve.pid}/task/${t}/comm`, "utf8").trim());
      expect(names).toContain(DECODE_THREAD_NAME);
    } finally {
      serve.kill("SIGTERM");
      await serve.exited;
    }
  }, 3_600_000);
});
