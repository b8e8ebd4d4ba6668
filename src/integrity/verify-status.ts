/**
 * The outcome of the last full `appliance verify` (the daily check), kept in a small JSON file the server reads
 * at every /metrics scrape (appliance_integrity_verify_* gauges). Without it a passing daily check left no trace
 * an operator could alert on ("no successful verify for 26 h").
 *
 * Where it lives: the installed systemd daily check runs as root with only CAP_DAC_READ_SEARCH and may write only
 * the log dir (ReadWritePaths=), and root without CAP_DAC_OVERRIDE cannot create files in the service account's
 * own directories; so install makes `<log dir>/verify` owned by root, group the service account (0750), where root
 * writes and the server reads. Everywhere else (not installed, launchd's check running as the service account)
 * the file sits in the state dir. It is a report, not evidence: the root-held audit anchors and the alert log are.
 */
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-write";
import { readSmallFile } from "../util/fs";
import type { Check } from "./report";

/** File name inside the record directory. */
export const VERIFY_STATUS_FILE = "verify-status.json";

/** What one full verify leaves behind. Times are unix milliseconds. */
export interface VerifyStatus {
  lastRunMs: number;
  ok: boolean;
  /** Names of the checks that failed on the last run (empty when ok). */
  failed: string[];
  /** The last run that passed (0 when none has). */
  lastSuccessMs: number;
}

/** The directory the file goes to: `<log dir>/verify` for an installed systemd service, else the state dir. */
export function verifyStatusDir(stateDir: string, installed?: { platform: string; logDir: string }): string {
  return installed?.platform === "systemd" ? path.join(installed.logDir, "verify") : stateDir;
}

/** Reads one status file; undefined when missing or unreadable (never throws: a scrape must not fail on it). */
export function readVerifyStatus(file: string): VerifyStatus | undefined {
  try {
    // A regular file of at most 64 KiB only: a FIFO planted in the state dir froze the server at its first scrape.
    const v = JSON.parse(readSmallFile(file, 1 << 16) ?? "null") as Partial<VerifyStatus>;
    if (typeof v.lastRunMs !== "number" || typeof v.ok !== "boolean") return undefined;
    return { lastRunMs: v.lastRunMs, ok: v.ok, failed: Array.isArray(v.failed) ? v.failed.map(String) : [],
      lastSuccessMs: typeof v.lastSuccessMs === "number" ? v.lastSuccessMs : 0 };
  } catch {
    return undefined;
  }
}

/** The newest of several candidate files (the server does not know which layout wrote it). */
export function newestVerifyStatus(files: string[]): VerifyStatus | undefined {
  let best: VerifyStatus | undefined;
  for (const f of files) {
    const s = readVerifyStatus(f);
    if (s && (!best || s.lastRunMs > best.lastRunMs)) best = s;
  }
  return best;
}

/**
 * Records a run's outcome: atomic replacement (readers see the old or the new file, never a torn one), mode 0644
 * (timestamps and check names only) and kept owned by the writer (the daily root check has no CAP_CHOWN). Without
 * a lock: two checks finishing at the same instant can only lose the other's lastSuccess carry-over.
 */
export function recordVerifyStatus(dir: string, checks: Check[], now = Date.now()): VerifyStatus {
  const file = path.join(dir, VERIFY_STATUS_FILE);
  const failed = checks.filter((c) => c.status === "fail").map((c) => c.name);
  const ok = failed.length === 0;
  const status: VerifyStatus = { lastRunMs: now, ok, failed, lastSuccessMs: ok ? now : readVerifyStatus(file)?.lastSuccessMs ?? 0 };
  writeFileAtomic(file, JSON.stringify(status) + "\n", { mode: 0o644, owner: null });
  return status;
}
