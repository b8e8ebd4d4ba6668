/**
 * The model manifest, CHECKSUMS.sha256, in exactly the format of `sha256sum`
 * and `shasum -a 256` ("<64 hex>  <file name>"), so the OS tools can check it too:
 *   cd MODELS_DIR && sha256sum -c CHECKSUMS.sha256
 */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/schema";
import { writeFileAtomic } from "../util/atomic-write";

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

/** Atomic, fsynced replace; callers doing read-modify-write hold withFileLock(manifestPath(dir)) around it. */
export function writeManifest(dir: string, entries: ManifestEntry[]) {
  const sorted = [...entries].sort((a, b) => a.file.localeCompare(b.file));
  writeFileAtomic(manifestPath(dir), sorted.map((e) => `${e.sha256}  ${e.file}\n`).join(""), { mode: 0o640 });
}

export const manifestPath = (dir: string) => path.join(dir, MANIFEST);

/** Hashing lives in util/ (one sha256 for the whole program); re-exported for existing callers. */
export { sha256Bytes, sha256File } from "../util/sha256";
