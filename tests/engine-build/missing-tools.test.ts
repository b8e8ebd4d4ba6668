/**
 * `appliance engine build` on a machine without the build tools (issue 11 item 3): the compiled binary names every
 * missing tool with the package that provides it, exits 3 (EXIT.TOOLS_MISSING) and writes nothing: no engine dir,
 * no temp dir. Runs the binary as users do, with a PATH that lacks cmake.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { EXIT } from "../../src/cli/exit-codes";
import { builtBinary, tmpDir } from "../helpers";

/** Runs the binary's `engine build` with exactly this PATH (no CC/CXX), the engine dir pointed at a temp path. */
async function engineBuild(pathDirs: string[]) {
  const dir = tmpDir("appliance-engine-tools-");
  const engineDir = path.join(dir, "engine");
  const tmp = path.join(dir, "tmp");
  fs.mkdirSync(tmp);
  const r = Bun.spawnSync([await builtBinary(), "engine", "build", "--state-dir", path.join(dir, "state")], {
    env: { PATH: pathDirs.join(":"), HOME: dir, TMPDIR: tmp, APPLIANCE_ENGINE__DIR: engineDir }, stdout: "pipe", stderr: "pipe",
  });
  return { code: r.exitCode, stderr: r.stderr.toString(), engineDir, tmpLeft: fs.readdirSync(tmp), stateExists: fs.existsSync(path.join(dir, "state")) };
}

/** A dir with links to the compilers and make this machine has, but no cmake. */
function pathWithoutCmake(): { dir: string; linked: string[] } {
  const dir = tmpDir("appliance-engine-path-");
  const linked: string[] = [];
  for (const tool of ["cc", "c++", "make", "ninja"]) {
    const found = Bun.which(tool);
    if (found) { fs.symlinkSync(found, path.join(dir, tool)); linked.push(tool); }
  }
  return { dir, linked };
}

describe("appliance engine build without build tools", () => {
  test("an empty PATH: cmake, both compilers and a build tool named, with Debian and macOS packages; exit 3; nothing written", async () => {
    const empty = tmpDir("appliance-engine-empty-path-");
    const r = await engineBuild([empty]);
    expect(r.code).toBe(EXIT.TOOLS_MISSING);
    expect(r.stderr).toContain("missing:\n  - cmake\n  - a C compiler (cc, gcc or clang)\n  - a C++ compiler (c++, g++ or clang++)\n  - a build tool (ninja or make)\n");
    expect(r.stderr).toContain("Debian/Ubuntu: apt-get install cmake gcc g++ make (or ninja-build)");
    expect(r.stderr).toContain("macOS: brew install cmake; xcode-select --install");
    expect(r.stderr).toContain("Nothing was written.");
    expect(fs.existsSync(r.engineDir)).toBe(false);
    expect(r.tmpLeft).toEqual([]);
    expect(r.stateExists).toBe(false);
  }, 60_000);

  const { dir, linked } = pathWithoutCmake();
  const hasCompilers = linked.includes("cc") && linked.includes("c++") && (linked.includes("make") || linked.includes("ninja"));
  if (!hasCompilers) console.warn(`engine-build missing-tools: the "only cmake missing" case SKIPPED: this machine lacks a compiler or make (found: ${linked.join(", ") || "none"})`);
  test.skipIf(!hasCompilers)("compilers present, cmake not: exactly cmake is named; exit 3; nothing written", async () => {
    const r = await engineBuild([dir]);
    expect(r.code).toBe(EXIT.TOOLS_MISSING);
    expect(r.stderr).toBe("appliance engine build: cannot build the engine here; missing:\n  - cmake\nDebian/Ubuntu: apt-get install cmake\nmacOS: brew install cmake\nNothing was written.\n");
    expect(fs.existsSync(r.engineDir)).toBe(false);
    expect(r.tmpLeft).toEqual([]);
  }, 60_000);

  test("--gpu cuda where $CUDACXX names no compiler: nvcc named with the CUDA toolkit too", async () => {
    const home = tmpDir("appliance-engine-cuda-");
    const p = Bun.spawnSync([await builtBinary(), "engine", "build", "--gpu", "cuda"], { env: { PATH: home, HOME: home, APPLIANCE_ENGINE__DIR: path.join(home, "engine"), CUDACXX: path.join(home, "no-nvcc") }, stderr: "pipe" });
    expect(p.exitCode).toBe(EXIT.TOOLS_MISSING);
    expect(p.stderr.toString()).toContain(`  - nvcc, the CUDA compiler ($CUDACXX=${path.join(home, "no-nvcc")})\n`);
    expect(p.stderr.toString()).toMatch(/apt-get install .*nvidia-cuda-toolkit/);
    expect(fs.existsSync(path.join(home, "engine"))).toBe(false);
  }, 60_000);
  // Run as nobody through setpriv, with the tools present: refused before anything is unpacked or written.
  const canDrop = process.geteuid?.() === 0 && !!Bun.which("setpriv") && hasCompilers && !!Bun.which("cmake");
  if (!canDrop) console.warn("engine-build missing-tools: the non-root case SKIPPED: needs root, setpriv, cmake and compilers");
  test.skipIf(!canDrop)("not root: refused, saying why, exit 1; nothing written", async () => {
    const dir = tmpDir("appliance-engine-nonroot-");
    fs.chmodSync(dir, 0o755);
    const bin = path.join(dir, "appliance");
    fs.copyFileSync(await builtBinary(), bin);
    fs.chmodSync(bin, 0o755);
    const engineDir = path.join(dir, "engine");
    const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "engine", "build", "--state-dir", path.join(dir, "state")],
      { env: { PATH: "/usr/bin:/bin", HOME: dir, TMPDIR: dir, APPLIANCE_ENGINE__DIR: engineDir }, stderr: "pipe" });
    expect(r.exitCode).toBe(EXIT.FAIL);
    expect(r.stderr.toString()).toContain(`appliance engine build: run it as root (sudo appliance engine build): the engine is installed root-owned and read-only in ${engineDir}`);
    expect(fs.readdirSync(dir).sort()).toEqual(["appliance"]);
  }, 60_000);
});
