/**
 * verify's built-engine check (the daily run and the unit's pre-start): an engine `appliance engine build` made
 * for this binary is root-owned all the way up, holds exactly its recorded files, and every file hashes to its
 * recorded sha256. The daily check hashes every file (no digest cache), as the native check does; the pre-start
 * check uses the hash cache as the start right after it does.
 */
import type { Config } from "../config/schema";
import { ENGINE_NLC_VERSION } from "../engine/engine-sources";
import { holdsEngine, inspectEngineDir, versionDirOf } from "../engine/engine-store";
import type { Check } from "./report";

/**
 * `cached` (the unit's pre-start check, verify --skip-models): a file unchanged since root last hashed it (same
 * device, inode, size, mtime and ctime as the root-written hash cache records) is not read again, as at a start;
 * the daily check reads every byte.
 */
export function checkBuiltEngine(config: Pick<Config, "engine">, nlcVersion: string | null = ENGINE_NLC_VERSION, cached = false): Check {
  if (config.engine.use === "embedded") return { name: "engine", status: "skip", detail: "engine.use is embedded" };
  if (!nlcVersion) return { name: "engine", status: "skip", detail: "running from source: no built engine is loaded" };
  const dir = versionDirOf(config.engine.dir, nlcVersion);
  if (!holdsEngine(dir)) {
    return config.engine.use === "built" ? { name: "engine", status: "fail", detail: `engine.use is built, but ${dir} does not exist (run: sudo appliance engine build)` }
      : { name: "engine", status: "skip", detail: `no built engine in ${dir}: serve uses the embedded libraries` };
  }
  const { records, problems, files, fromCache } = inspectEngineDir(dir, cached);
  if (problems.length) return { name: "engine", status: "fail", detail: problems.join("; ") };
  return { name: "engine", status: "ok", detail: `${dir} holds exactly the built engine's files (${records.map((r) => r.folder).join(", ")}), each with its recorded sha256${cached ? ` (${fromCache} of ${files} unchanged since root hashed them: from the root-written hash cache)` : " (every byte read)"}` };
}
