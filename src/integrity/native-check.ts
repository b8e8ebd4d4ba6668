/** verify's native-library check: the dir the service loads from holds exactly the embedded files, byte for byte. */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/schema";
import { checkNativeDir, checkRootOwned, SYSTEM_NATIVE_DIR } from "../engine/native";
import { NATIVE_BUNDLE, type NativeBundle } from "../engine/native-assets";
import type { Check } from "./report";

export function checkNative(config: Pick<Config, "stateDir">, bundle = NATIVE_BUNDLE as NativeBundle | null, systemDir = SYSTEM_NATIVE_DIR, root = "/"): Check {
  if (!bundle) return { name: "native", status: "skip", detail: "running from source: no embedded libraries" };
  const system = path.join(systemDir, bundle.version);
  const dir = fs.existsSync(system) ? system : path.join(config.stateDir, "native", bundle.version);
  const missing = absent(dir);
  if (missing === "EACCES") return { name: "native", status: "unknown", detail: `${dir} cannot be read as this user (run verify as root or as the service's account)` };
  if (missing) return { name: "native", status: "skip", detail: `${dir} not unpacked yet (the first start does it)` };
  const problems = checkNativeDir(dir, bundle);
  // serve refuses an installed dir that is not root-owned or that group or others may write (prepareNative); verify
  // passed it (live-service run: a `chmod 0777` on a library folder left verify "all checks passed" while every start
  // of the service failed).
  if (dir === system) try { checkRootOwned(dir, root); } catch (e) { problems.push((e as Error).message); }
  return problems.length ? { name: "native", status: "fail", detail: problems.join("; ") }
    : { name: "native", status: "ok", detail: `${dir} holds exactly the embedded libraries` };
}

/** Why `dir` cannot be seen: "ENOENT" (not there), "EACCES" (there or not, this user may not look), or undefined (there). */
function absent(dir: string): "ENOENT" | "EACCES" | undefined {
  try { fs.statSync(dir); return undefined; } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EACCES" || (e as NodeJS.ErrnoException).code === "EPERM" ? "EACCES" : "ENOENT";
  }
}
