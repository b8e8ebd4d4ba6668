/**
 * Native libraries (issue 10, item 8): ggml dlopens every libggml-cpu-*.so in its folder, so the
 * folder must hold exactly the embedded files. Unlisted files are removed before anything loads (per
 * user) or stop the start (root-owned system dir); `verify` checks the exact contents.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { NativeBundle } from "../../src/engine/native-assets";
import { checkNativeDir, installNative, NativeLibError, prepareNative } from "../../src/engine/native";
import { checkNative } from "../../src/integrity/native-check";
import { sha256Bytes } from "../../src/util/sha256";
import { builtBinary, tinyModel, tmpDir } from "../helpers";

const dirs: string[] = [];
const dir = (parent?: string) => { const d = parent ? fs.mkdtempSync(path.join(parent, "appliance-native-")) : tmpDir("appliance-native-"); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
const asRoot = process.getuid?.() === 0;

/** A bundle like the build's, over two small files. */
function fakeBundle(): NativeBundle {
  const src = dir();
  const asset = (name: string, body: string) => { fs.writeFileSync(path.join(src, name), body); return { name, path: path.join(src, name), sha256: sha256Bytes(body) }; };
  return { version: "9.9.9-test", folders: [{ folder: "linux-x64", assets: [asset("libggml-base.so", "base"), asset("libggml-cpu-x64.so", "cpu")] }] };
}

describe("per-user native dir", () => {
  test("an unlisted libggml-cpu-zzz.so (and a symlink, and a directory) is removed before loading; verify flags it first", async () => {
    const bundle = fakeBundle();
    const stateDir = dir();
    const none = path.join(dir(), "no-system-dir");
    const first = await prepareNative(stateDir, bundle, none);
    expect(first).toMatchObject({ files: 2, shared: false, removed: [] });
    const folder = path.join(first!.dir, "linux-x64");
    fs.writeFileSync(path.join(folder, "libggml-cpu-zzz.so"), "planted");
    fs.symlinkSync("/etc/passwd", path.join(folder, "libggml-cpu-link.so"));
    fs.mkdirSync(path.join(first!.dir, "extra"));
    fs.writeFileSync(path.join(folder, "libggml-cpu-x64.so"), "swapped");
    const check = checkNative({ stateDir }, bundle, none);
    expect(check.status).toBe("fail");
    expect(check.detail).toContain("libggml-cpu-zzz.so is not one of the embedded libraries");
    expect(check.detail).toMatch(/libggml-cpu-x64\.so: sha256 \w+ does not match/);
    const again = await prepareNative(stateDir, bundle, none);
    expect(again!.removed.map((f) => path.relative(again!.dir, f)).sort()).toEqual(["extra", "linux-x64/libggml-cpu-link.so", "linux-x64/libggml-cpu-zzz.so"]);
    expect(fs.readdirSync(folder).sort()).toEqual(["libggml-base.so", "libggml-cpu-x64.so"]);
    expect(fs.readFileSync(path.join(folder, "libggml-cpu-x64.so"), "utf8")).toBe("cpu");
    expect(checkNativeDir(again!.dir, bundle)).toEqual([]);
    expect(checkNative({ stateDir }, bundle, none).status).toBe("ok");
  });

  test("an embedded library whose bytes do not match its recorded sha256 stops the start before anything is written", async () => {
    const bundle = fakeBundle();
    const asset = bundle.folders[0]!.assets[1]!;
    fs.writeFileSync(asset.path, "damaged"); // the binary's embedded copy changed after the build recorded its digest
    const stateDir = dir();
    const none = path.join(dir(), "no-system-dir");
    const err = await prepareNative(stateDir, bundle, none).then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(NativeLibError);
    expect(err!.message).toContain(`${asset.path}: sha256 ${sha256Bytes("damaged")} does not match the embedded ${asset.sha256}`);
    const folder = path.join(stateDir, "native", bundle.version, "linux-x64");
    expect(fs.existsSync(path.join(folder, "libggml-cpu-x64.so"))).toBe(false); // never on disk where ggml would dlopen it
  });
});

describe.skipIf(!asRoot)("installed (root-owned) native dir", () => {
  test("install writes it root-owned and read-only; serve uses it without writing; anything unlisted or writable stops the start", async () => {
    const bundle = fakeBundle();
    const system = path.join(dir(os.homedir()), "native"); // not under /tmp: every parent must be root-owned, not world-writable
    const installed = await installNative(system, bundle);
    const folder = path.join(installed!.dir, "linux-x64");
    expect(fs.statSync(folder).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(folder, "libggml-cpu-x64.so")).mode & 0o777).toBe(0o444);
    const stateDir = dir();
    expect(await prepareNative(stateDir, bundle, system)).toMatchObject({ dir: installed!.dir, shared: true });
    expect(fs.existsSync(path.join(stateDir, "native"))).toBe(false);
    fs.writeFileSync(path.join(folder, "libggml-cpu-zzz.so"), "planted");
    await expect(prepareNative(stateDir, bundle, system)).rejects.toThrow(/libggml-cpu-zzz\.so is not one of the embedded libraries/);
    expect(checkNative({ stateDir }, bundle, system).status).toBe("fail");
    fs.rmSync(path.join(folder, "libggml-cpu-zzz.so"));
    fs.chmodSync(folder, 0o777);
    await expect(prepareNative(stateDir, bundle, system)).rejects.toThrow(NativeLibError);
    // Live-service run: verify said "all checks passed" on the dir serve refuses, and install left its mode as it was.
    expect(checkNative({ stateDir }, bundle, system)).toMatchObject({ status: "fail", detail: expect.stringContaining(`${folder} must be root-owned and not writable by group or others`) });
    fs.chmodSync(path.join(folder, "libggml-cpu-x64.so"), 0o666);
    await installNative(system, bundle);
    expect([fs.statSync(folder).mode & 0o777, fs.statSync(path.join(folder, "libggml-cpu-x64.so")).mode & 0o777]).toEqual([0o755, 0o444]);
    expect(checkNative({ stateDir }, bundle, system).status).toBe("ok");
    expect(await prepareNative(stateDir, bundle, system)).toMatchObject({ dir: installed!.dir, shared: true });
  });
});

const gcc = Bun.which("cc") ?? Bun.which("gcc");

describe("the compiled binary", () => {
  test.skipIf(!gcc)("a planted libggml-cpu-zzz.so never runs inside the server, and verify names it", async () => {
    const work = dir();
    const bin = path.join(work, "appliance");
    fs.copyFileSync(await builtBinary(), bin);
    fs.chmodSync(bin, 0o755);
    const stateDir = path.join(work, "state");
    const env = { PATH: "/usr/bin:/bin", HOME: work };
    const run = (args: string[]) => Bun.spawnSync([bin, ...args], { cwd: work, env });
    expect(run(["models", "add", await tinyModel(), "--name", "tiny", "--state-dir", stateDir]).exitCode).toBe(0);
    const serveOnce = async () => {
      const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0"], { cwd: work, env, stdout: "pipe", stderr: "pipe" });
      let out = "";
      const reader = proc.stdout.getReader();
      while (!out.includes('"msg":"listening"')) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`serve ended: ${out}${await new Response(proc.stderr).text()}`);
        out += new TextDecoder().decode(value);
      }
      proc.kill("SIGTERM");
      await proc.exited;
      return out;
    };
    await serveOnce(); // unpacks the libraries
    const root = path.join(stateDir, "native");
    const version = fs.readdirSync(root)[0]!;
    // The CPU variants sit in their folder's fallback/ subfolder (scripts/build-cpu-backend.ts): node-llama-cpp loads
    // libggml-*.so from the folder, then scans fallback/, so a plant in either would be loaded.
    const folder = fs.readdirSync(path.join(root, version), { withFileTypes: true }).filter((d) => d.isDirectory())
      .map((d) => path.join(root, version, d.name))
      .find((d) => fs.existsSync(path.join(d, "fallback")) && fs.readdirSync(path.join(d, "fallback")).some((f) => f.startsWith("libggml-cpu-")));
    expect(folder).toBeDefined();
    // A library whose constructor leaves a mark if it is ever loaded into a process.
    const marker = path.join(work, "planted-ran");
    const c = path.join(work, "evil.c");
    fs.writeFileSync(c, `#include <stdio.h>\n__attribute__((constructor)) static void f(void) { FILE *m = fopen("${marker}", "w"); if (m) fclose(m); }\n`);
    const planted = [path.join(folder!, "libggml-cpu-zzz.so"), path.join(folder!, "fallback", "libggml-cpu-zzy.so")];
    for (const p of planted) expect(Bun.spawnSync([gcc!, "-shared", "-fPIC", "-o", p, c]).exitCode).toBe(0);
    const verify = run(["verify", "--state-dir", stateDir]);
    expect(verify.exitCode).toBe(1);
    expect(verify.stdout.toString()).toContain("libggml-cpu-zzz.so is not one of the embedded libraries");
    expect(verify.stdout.toString()).toContain("libggml-cpu-zzy.so is not one of the embedded libraries");
    const log = await serveOnce();
    expect(fs.existsSync(marker)).toBe(false);
    for (const p of planted) expect(fs.existsSync(p)).toBe(false);
    expect(log).toContain("libggml-cpu-zzz.so");
    expect(log).toContain("libggml-cpu-zzy.so");
    expect(run(["verify", "--state-dir", stateDir]).stdout.toString()).toMatch(/native\s+\S+ holds exactly the embedded libraries/);
  }, 240_000);
});
