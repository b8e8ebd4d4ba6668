/**
 * The native libraries' hash cache (issue 11 item 6): a start no longer re-reads every embedded library when root
 * wrote down their sha256 by (dev, inode, size, mtime, ctime) in the version dir, but a library changed in any way
 * (even rewritten in place with its times put back: ctime still moves) is hashed again and refused, and a cache the
 * service account could have written is ignored. Needs root (the cache is trusted only for root-owned files).
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { NativeBundle } from "../../src/engine/native-assets";
import { installNative, NATIVE_HASH_CACHE, prepareNative } from "../../src/engine/native";
import { sha256Bytes } from "../../src/util/sha256";
import { tmpDir } from "../helpers";

const root = process.geteuid?.() === 0;
if (!root) console.warn("native hash-cache tests SKIPPED: they need root (the cache is trusted only for root-owned files)");
const NOBODY = 65534;

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

/** A bundle like the build's, over two small files. */
function fakeBundle(): NativeBundle {
  const src = tmpDir("appliance-native-cache-src-");
  const asset = (name: string, body: string) => { fs.writeFileSync(path.join(src, name), body); return { name, path: path.join(src, name), sha256: sha256Bytes(body) }; };
  return { version: "9.9.8-cache", folders: [{ folder: "linux-x64", assets: [asset("libggml-base.so", "base"), asset("libggml-cpu-x64.so", "cpu")] }] };
}

/** A system dir as install leaves it (not under /tmp: every parent must be root-owned and not world-writable). */
async function installed() {
  const parent = fs.mkdtempSync(path.join(os.homedir(), "appliance-native-cache-"));
  dirs.push(parent);
  const system = path.join(parent, "native"), bundle = fakeBundle();
  const { dir } = (await installNative(system, bundle))!;
  return { system, bundle, dir, cacheFile: path.join(dir, NATIVE_HASH_CACHE), stateDir: tmpDir("appliance-native-cache-state-") };
}

type Cache = { entries: Record<string, { sha256: string }> };
const readCache = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as Cache;

describe.skipIf(!root)("native libraries' hash cache (as root)", () => {
  test("install writes it root-owned 0644, one entry per library, and a start reads the digests from it", async () => {
    const { system, bundle, dir, cacheFile, stateDir } = await installed();
    const st = fs.statSync(cacheFile);
    expect([st.uid, st.mode & 0o777]).toEqual([0, 0o644]);
    const entries = readCache(cacheFile).entries;
    expect(Object.keys(entries).sort()).toEqual(["libggml-base.so", "libggml-cpu-x64.so"].map((f) => path.join(dir, "linux-x64", f)));
    expect(await prepareNative(stateDir, bundle, system)).toMatchObject({ dir, shared: true });
    // Proof that the start took the cached digest: root's cache saying another sha256 for the same bytes refuses them.
    const forged = readCache(cacheFile);
    forged.entries[path.join(dir, "linux-x64", "libggml-cpu-x64.so")]!.sha256 = "0".repeat(64);
    fs.writeFileSync(cacheFile, JSON.stringify(forged));
    await expect(prepareNative(stateDir, bundle, system)).rejects.toThrow(/libggml-cpu-x64\.so: sha256 0{64} does not match/);
    // The same file owned by the service account stops the start, like any file in the system dir that is not root's.
    fs.chownSync(cacheFile, NOBODY, NOBODY);
    await expect(prepareNative(stateDir, bundle, system)).rejects.toThrow(/must be root-owned/);
    // No cache: every library is hashed, and they pass.
    fs.rmSync(cacheFile);
    expect(await prepareNative(stateDir, bundle, system)).toMatchObject({ dir, shared: true });
  });

  test("a library rewritten in place with its size and times put back is still refused", async () => {
    const { system, bundle, dir, stateDir } = await installed();
    expect(await prepareNative(stateDir, bundle, system)).toMatchObject({ dir });
    const lib = path.join(dir, "linux-x64", "libggml-cpu-x64.so");
    const ref = path.join(stateDir, "ref");
    fs.writeFileSync(ref, "");
    expect(Bun.spawnSync(["touch", "-r", lib, ref]).exitCode).toBe(0);
    fs.chmodSync(lib, 0o644);
    fs.writeFileSync(lib, "CPU"); // same size
    fs.chmodSync(lib, 0o444);
    expect(Bun.spawnSync(["touch", "-r", ref, lib]).exitCode).toBe(0);
    expect(fs.statSync(lib).size).toBe(3);
    await expect(prepareNative(stateDir, bundle, system)).rejects.toThrow(/libggml-cpu-x64\.so: sha256 \w+ does not match the embedded/);
  });

  test("per user (root's own state dir): the cache is written at unpack; a swapped library is rewritten, not trusted", async () => {
    const bundle = fakeBundle(), stateDir = tmpDir("appliance-native-cache-user-"), none = path.join(stateDir, "no-system-dir");
    const first = (await prepareNative(stateDir, bundle, none))!;
    const cacheFile = path.join(first.dir, NATIVE_HASH_CACHE);
    expect(Object.keys(readCache(cacheFile).entries)).toHaveLength(2);
    const lib = path.join(first.dir, "linux-x64", "libggml-cpu-x64.so");
    fs.writeFileSync(lib, "CPU");
    const again = (await prepareNative(stateDir, bundle, none))!;
    expect(again.removed).toEqual([]);
    expect(fs.readFileSync(lib, "utf8")).toBe("cpu");
  });
});
