/**
 * In the compiled binary the llama.cpp libraries must exist as real files
 * before dlopen. They are unpacked into <stateDir>/native (0700, owned by the
 * running user, never a shared /tmp path) and every file's sha256 is checked
 * against the digests embedded at build time on EVERY start: otherwise the
 * unpacked .so would be a code-injection hole.
 */
import fs from "node:fs";
import path from "node:path";
import { sha256Bytes } from "../util/sha256";
import { NATIVE_BUNDLE } from "./native-assets";

export class NativeLibError extends Error {}

declare global { var __APPLIANCE_BINS_DIR__: string | undefined }

const sha256File = (file: string) => sha256Bytes(fs.readFileSync(file));

function privateDir(dir: string) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
    throw new NativeLibError(`${dir} is owned by uid ${st.uid}, not by this user: refusing to load libraries from it`);
  }
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}

/** Unpacks and verifies the embedded libraries; a no-op when running from source. */
export async function prepareNative(stateDir: string): Promise<{ dir: string; files: number } | null> {
  const bundle = NATIVE_BUNDLE as import("./native-assets").NativeBundle | null;
  if (!bundle) return null;
  const root = path.join(stateDir, "native", bundle.version);
  privateDir(path.join(stateDir, "native"));
  privateDir(root);
  let files = 0;
  for (const { folder, assets } of bundle.folders) {
    const dir = path.join(root, folder);
    privateDir(dir);
    for (const asset of assets) {
      const target = path.join(dir, asset.name);
      let ok = false;
      try { ok = sha256File(target) === asset.sha256; } catch { /* missing */ }
      if (!ok) {
        const tmp = `${target}.${process.pid}.tmp`;
        fs.rmSync(tmp, { force: true });
        fs.writeFileSync(tmp, new Uint8Array(await Bun.file(asset.path).arrayBuffer()), { mode: 0o500 });
        fs.renameSync(tmp, target);
        const actual = sha256File(target);
        if (actual !== asset.sha256) throw new NativeLibError(`${target}: sha256 ${actual} does not match the embedded ${asset.sha256}`);
      }
      files++;
    }
  }
  globalThis.__APPLIANCE_BINS_DIR__ = root;
  return { dir: root, files };
}
