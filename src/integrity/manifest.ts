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
  let text: string;
  // Only a missing manifest is an empty one: unreadable (EACCES on the dir or file) said "lists none" (resilience run).
  try { text = fs.readFileSync(file, "utf8"); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new Error(`${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): this account (uid ${process.getuid?.()}) needs read access to the models dir and its manifest`);
  }
  const out: ManifestEntry[] = [];
  for (const [i, line] of text.split("\n").entries()) {
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
