/** verify's native-library check: the dir the service loads from holds exactly the embedded files, byte for byte. */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/schema";
import { checkNativeDir, SYSTEM_NATIVE_DIR } from "../engine/native";
import { NATIVE_BUNDLE, type NativeBundle } from "../engine/native-assets";
import type { Check } from "./report";

export function checkNative(config: Pick<Config, "stateDir">, bundle = NATIVE_BUNDLE as NativeBundle | null, systemDir = SYSTEM_NATIVE_DIR): Check {
  if (!bundle) return { name: "native", status: "skip", detail: "running from source: no embedded libraries" };
  const system = path.join(systemDir, bundle.version);
  const dir = fs.existsSync(system) ? system : path.join(config.stateDir, "native", bundle.version);
  if (!fs.existsSync(dir)) return { name: "native", status: "skip", detail: `${dir} not unpacked yet (the first start does it)` };
  const problems = checkNativeDir(dir, bundle);
  return problems.length ? { name: "native", status: "fail", detail: problems.join("; ") }
    : { name: "native", status: "ok", detail: `${dir} holds exactly the embedded libraries` };
}
