/**
 * Anchors held outside the service's reach. The service holds audit.key, so with its rights an attacker can
 * rewrite the log, re-chain it and rewrite audit.checkpoints to match. What it cannot rewrite is a file it
 * has no write access to: the daily integrity check, run by root (appliance-verify.service), verifies the
 * chain against the anchors already there and then appends where the chain stands now (sequence number +
 * head MAC) to a root-owned file in a root-only directory. `appliance audit verify --checkpoints <that file>`
 * then catches any later truncation below, or rewrite of, an anchored record. Records written since the
 * last anchor are covered only by the journal's checkpoint copies.
 */
import fs from "node:fs";
import path from "node:path";
import { checkpointText, hmac, readAuditKey, type Checkpoint } from "./audit";
import { parseCheckpoints, verifyAudit, type VerifyResult } from "./audit-verify";

/** Where the installed service's anchors live: root-only, written by the root-run daily check (systemd). */
export const SYSTEM_ANCHOR_FILE = "/var/lib/appliance-anchor/audit.anchors";

export type AnchorResult = { verify: VerifyResult; anchored?: Checkpoint; nothing?: true };

/**
 * Verifies `logFile` against the anchors in `anchorFile` (and the usual checkpoints); when it verifies,
 * appends where the chain stands to `anchorFile` (created 0600 in a 0700 directory). A log that does not
 * exist yet (no key, no records) is nothing to anchor.
 */
export function anchorAudit(logFile: string, anchorFile: string, clock: () => number = Date.now): AnchorResult {
  const key = readAuditKey(logFile);
  if (!key) return { verify: { ok: true, records: 0, tornTail: false, firstSeq: 0, lastSeq: 0, checkpoints: 0, files: [], head: "" }, nothing: true };
  const anchors = fs.existsSync(anchorFile) ? parseCheckpoints(fs.readFileSync(anchorFile, "utf8")) : [];
  const verify = verifyAudit(logFile, { key, checkpoints: anchors });
  if (!verify.ok || verify.lastSeq === 0 || anchors.some((a) => a.seq === verify.lastSeq)) return { verify };
  const c = { ts: new Date(clock()).toISOString(), seq: verify.lastSeq, head: verify.head };
  const anchored: Checkpoint = { ...c, mac: hmac(key, checkpointText(c)) };
  fs.mkdirSync(path.dirname(anchorFile), { recursive: true, mode: 0o700 });
  fs.appendFileSync(anchorFile, JSON.stringify(anchored) + "\n", { mode: 0o600 });
  return { verify, anchored };
}
