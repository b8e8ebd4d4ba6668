/**
 * Build facts. scripts/build.ts defines APPLIANCE_BUILD (commit, llama.cpp
 * release) at compile time; from source they are read at run time instead.
 */
import pkg from "../package.json" with { type: "json" };

declare const APPLIANCE_BUILD: { commit: string; source?: string; llamaCpp: string; target: string } | undefined;

/** `source`: the compiled binary's digest of what it was built from (scripts/build.ts sourceDigest); absent from source. */
export interface VersionInfo { app: string; commit: string; source?: string; bun: string; llamaCpp: string; target: string }

function fromSource(): { commit: string; llamaCpp: string; target: string } {
  let commit = "unknown", llamaCpp = "unknown";
  try {
    const r = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: import.meta.dir, stderr: "ignore" });
    if (r.exitCode === 0) commit = r.stdout.toString().trim();
  } catch { /* not a checkout */ }
  try {
    const meta = require("node-llama-cpp/llama/binariesGithubRelease.json") as { release?: string };
    llamaCpp = meta.release ?? llamaCpp;
  } catch { /* not installed the usual way */ }
  return { commit, llamaCpp, target: `${process.platform}-${process.arch} (source)` };
}

export function versionInfo(): VersionInfo {
  const b = typeof APPLIANCE_BUILD !== "undefined" ? APPLIANCE_BUILD : fromSource();
  const source = "source" in b && typeof b.source === "string" ? b.source : undefined;
  return { app: pkg.version, commit: b.commit, ...(source ? { source } : {}), bun: Bun.version, llamaCpp: b.llamaCpp, target: b.target };
}

// `source`: what the start memo's build key names (integrity/start-memo.ts), so an operator can match the two.
export const formatVersion = (v: VersionInfo) =>
  `appliance ${v.app} (commit ${v.commit}${v.source ? `, source ${v.source}` : ""}, ${v.target})\nbun ${v.bun}\nllama.cpp ${v.llamaCpp}`;
