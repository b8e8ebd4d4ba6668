/**
 * The model manifest, CHECKSUMS.sha256, in exactly the format of `sha256sum`
 * and `shasum -a 256` ("<64 hex>  <file name>"), so the OS tools can check it too:
 *   cd MODELS_DIR && sha256sum -c CHECKSUMS.sha256
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/schema";

export const MANIFEST = "CHECKSUMS.sha256";

export interface ManifestEntry { sha256: string; file: string }

export const modelsDirOf = (config: Pick<Config, "modelsDir" | "stateDir">) => config.modelsDir || path.join(config.stateDir, "models");

export function readManifest(dir: string): ManifestEntry[] {
  const file = path.join(dir, MANIFEST);
  if (!fs.existsSync(file)) return [];
  const out: ManifestEntry[] = [];
  for (const [i, line] of fs.readFileSync(file, "utf8").split("\n").entries()) {
    if (!line.trim()) continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m || m[2]!.includes("/") || m[2] === ".." ) throw new Error(`${file}:${i + 1}: not a sha256sum line for a plain file name`);
    out.push({ sha256: m[1]!, file: m[2]! });
  }
  return out;
}

export function writeManifest(dir: string, entries: ManifestEntry[]) {
  const file = path.join(dir, MANIFEST);
  const tmp = `${file}.${process.pid}.tmp`;
  const sorted = [...entries].sort((a, b) => a.file.localeCompare(b.file));
  fs.writeFileSync(tmp, sorted.map((e) => `${e.sha256}  ${e.file}\n`).join(""), { mode: 0o640 });
  fs.renameSync(tmp, file);
}

/** Streams the file through sha256 (models are GBs); `onProgress` gets bytes done. */
export async function sha256File(file: string, onProgress?: (done: number, total: number) => void): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  const total = fs.statSync(file).size;
  let done = 0;
  for await (const chunk of Bun.file(file).stream()) {
    hasher.update(chunk);
    done += chunk.byteLength;
    onProgress?.(done, total);
  }
  return hasher.digest("hex");
}

export const sha256Bytes = (b: Uint8Array | string) => crypto.createHash("sha256").update(b).digest("hex");
