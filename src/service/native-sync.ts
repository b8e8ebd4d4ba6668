/**
 * The root-owned native-library dirs (SYSTEM_NATIVE_DIR/<version>) across updates. The libraries are
 * embedded in each binary, so only that binary can write its own dir: update and rollback run
 * `BIN install --native-only` (as root, like install itself) for the binary they switch to, before the
 * switch, and afterwards keep exactly the dirs of the installed binary and its `.previous` (the one a
 * rollback needs), removing older versions' dirs.
 */
import fs from "node:fs";
import path from "node:path";
import { installNative, SYSTEM_NATIVE_DIR } from "../engine/native";
import type { Layout } from "./layout";
import type { Runner } from "./platform";

/** The argv tail that makes a binary write its own native libraries (and print where). */
export const NATIVE_ONLY = ["install", "--native-only"];

/** The line `install --native-only` prints last: the version dir it wrote or checked, or "none" (from source). */
const NATIVE_LINE = /^native: (.+)$/m;

/** The system native dir under the layout's root. */
export const nativeRoot = (l: Layout) => path.join(l.root, SYSTEM_NATIVE_DIR);

/** What `install --native-only` does in the binary that runs it: writes or repairs its own libraries' dir. */
export async function installOwnNative(l: Layout, out: (s: string) => void): Promise<void> {
  const r = await installNative(nativeRoot(l));
  if (r?.removed.length) out(`removed from ${r.dir}: ${r.removed.join(", ")}`);
  out(`native: ${r ? r.dir : "none"}`);
}

export type Prepared = { ok: true; dir?: string } | { ok: false; reason: string };

/** Runs `bin install --native-only`: the binary writes (or checks) its own native dir; its version dir, if any. */
/**
 * How long a binary may take to write its native libraries (seconds in practice: unpack ~20 MB and hash them);
 * past it, it is killed and refused (a new binary that hung here held `appliance update` forever).
 */
export const NATIVE_STEP_TIMEOUT_MS = 120_000;

export function prepareNativeOf(bin: string, l: Layout, run: Runner, timeoutMs = NATIVE_STEP_TIMEOUT_MS): Prepared {
  const r = run([bin, ...NATIVE_ONLY, "--root", l.root, "--platform", l.platform], { timeoutMs });
  const line = NATIVE_LINE.exec(r.out)?.[1]?.trim();
  if (r.code !== 0 || !line) {
    const tail = r.out.trim().split("\n").slice(-2).join(" | ").slice(-300);
    const ended = r.code === 124 ? `was stopped after ${timeoutMs / 1000} s without finishing` : `exited with code ${r.code}`;
    return { ok: false, reason: `${bin} ${NATIVE_ONLY.join(" ")} ${ended}${tail ? `: ${tail}` : ""}` };
  }
  return { ok: true, dir: line === "none" ? undefined : line };
}

/**
 * After an update or rollback: the installed binary and its `.previous` each (re)write their own dir, and
 * every other version dir is removed. If either binary cannot say which dir it uses, nothing is removed.
 */
export function syncNative(l: Layout, run: Runner, out: (s: string) => void): void {
  const keep = new Set<string>();
  for (const bin of [l.bin, l.binBackup]) {
    if (!fs.existsSync(bin)) continue;
    const p = prepareNativeOf(bin, l, run);
    if (!p.ok) { out(`kept every native-library dir: ${p.reason}`); return; }
    if (p.dir) keep.add(path.basename(p.dir));
  }
  const root = nativeRoot(l);
  if (!keep.size || !fs.existsSync(root)) return;
  for (const name of fs.readdirSync(root)) {
    if (keep.has(name)) continue;
    fs.rmSync(path.join(root, name), { recursive: true, force: true });
    out(`removed the native libraries of a binary no longer installed: ${path.join(root, name)}`);
  }
}
