/**
 * Anchors held outside the service's reach. The service holds audit.key, so with its rights an attacker can
 * rewrite the log, re-chain it and rewrite audit.checkpoints to match. What it cannot rewrite is a file it
 * has no write access to: root's anchor runs (appliance-anchor.timer every few minutes, incremental, and the
 * daily appliance-verify.service, full) verify the chain against the anchors already there and then append
 * where the chain stands now (sequence number + head MAC) to a root-owned file in a root-only directory.
 * `appliance audit verify --checkpoints <that file>` then catches any later truncation below, or rewrite of,
 * an anchored record. Records written since the last anchor are covered only by the journal's checkpoint copies.
 *
 * Incremental: each anchor line also records where its record ends in the log (inode + byte offset). The next
 * run re-reads that one record (its MAC must still be the anchored head) and verifies only what follows, so a
 * run costs what was written since the last one, not the whole log. Anything unexpected there (rotated file,
 * shorter file, a different record) falls back to the full walk, which names the first bad line. What the
 * incremental run does not re-read, records before the last anchor, the daily full run checks.
 */
import fs from "node:fs";
import path from "node:path";
import { checkpointText, hmac, readAuditKey, splitMac, type Checkpoint } from "./audit";
import { auditFiles, parseCheckpoints, verifyAudit, type LogPosition, type VerifyResult } from "./audit-verify";

/** Where the installed service's anchors live: root-only, written by root's anchor and daily check units (systemd). */
export const SYSTEM_ANCHOR_FILE = "/var/lib/appliance-anchor/audit.anchors";

/** An anchor line: a MAC'd checkpoint, plus where its record ends (a hint for the next run; not trusted alone). */
export type Anchor = Checkpoint & { at?: LogPosition };

export type AnchorResult = {
  verify: VerifyResult; anchored?: Anchor; nothing?: true;
  /** The run verified only the records after the last anchor (otherwise: the whole log). */
  incremental?: boolean;
};

export interface AnchorOptions {
  clock?: () => number;
  /** Walk the whole log even when the last anchor says where to resume (the daily check). */
  full?: boolean;
}

/**
 * Verifies `logFile` against the anchors in `anchorFile` (and the usual checkpoints); when it verifies,
 * appends where the chain stands to `anchorFile` (created 0600 in a 0700 directory). A log that does not
 * exist yet (no key, no records) is nothing to anchor.
 */
export function anchorAudit(logFile: string, anchorFile: string, opts: AnchorOptions = {}): AnchorResult {
  const reach = process.getuid?.() === 0 ? othersReach(anchorFile) : undefined;
  if (reach) return { verify: { ok: false, records: 0, file: anchorFile, line: 0, reason: reach } };
  const key = readAuditKey(logFile);
  if (!key) return { verify: { ok: true, records: 0, tornTail: false, firstSeq: 0, lastSeq: 0, checkpoints: 0, files: [], head: "" }, nothing: true };
  const anchors: Anchor[] = fs.existsSync(anchorFile) ? parseCheckpoints(fs.readFileSync(anchorFile, "utf8")) : [];
  const last = anchors.reduce<Anchor | undefined>((m, a) => (m && m.seq >= a.seq ? m : a), undefined);
  let verify: VerifyResult | undefined;
  if (!opts.full && last?.at && anchoredRecordAt(logFile, key, last)) {
    try { verify = verifyAudit(logFile, { key, checkpoints: anchors, from: { at: last.at, seq: last.seq, head: last.head } }); } catch { /* full walk below */ }
  }
  const incremental = verify?.ok === true;
  if (!verify?.ok) verify = verifyAudit(logFile, { key, checkpoints: anchors }); // exact first bad line
  if (!verify.ok || verify.lastSeq === 0 || anchors.some((a) => a.seq === verify.lastSeq)) return { verify, incremental };
  const c = { ts: new Date((opts.clock ?? Date.now)()).toISOString(), seq: verify.lastSeq, head: verify.head };
  const anchored: Anchor = { ...c, mac: hmac(key, checkpointText(c)), ...(verify.end && { at: verify.end }) };
  fs.mkdirSync(path.dirname(anchorFile), { recursive: true, mode: 0o700 });
  fs.appendFileSync(anchorFile, JSON.stringify(anchored) + "\n", { mode: 0o600 });
  return { verify, anchored, incremental };
}

/** Whether the anchored record still ends at its recorded position, unchanged (same seq, same MAC, MAC valid). */
function anchoredRecordAt(logFile: string, key: Buffer, a: Anchor): boolean {
  const f = auditFiles(logFile).find((x) => fs.statSync(x).ino === a.at!.ino);
  if (!f) return false;
  const fd = fs.openSync(f, "r");
  try {
    if (fs.fstatSync(fd).size < a.at!.end) return false;
    const n = Math.min(64 * 1024, a.at!.end);
    const buf = Buffer.alloc(n);
    if (fs.readSync(fd, buf, 0, n, a.at!.end - n) !== n || buf[n - 1] !== 0x0a) return false;
    const line = buf.toString("utf8", buf.lastIndexOf(0x0a, n - 2) + 1, n - 1);
    const parts = splitMac(line);
    if (!parts || parts.mac !== a.head || hmac(key, parts.body) !== parts.mac) return false;
    return (JSON.parse(line) as { seq?: unknown }).seq === a.seq;
  } catch { return false; } finally { fs.closeSync(fd); }
}

/**
 * Why root's anchors are not out of others' reach, if they are not: the file or its dir not root's, open to group or
 * others, or a link. The anchors are worth only what no one but root can write; a dir handed to the service account
 * (chown, chmod 0777) was appended to silently (claims audit).
 */
function othersReach(anchorFile: string): string | undefined {
  for (const p of [path.dirname(anchorFile), anchorFile]) {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isSymbolicLink() || st.uid !== 0 || (st.mode & 0o077) !== 0) {
      return `${p} must be root's and root-only (uid ${st.uid}, mode 0${(st.mode & 0o777).toString(8)}${st.isSymbolicLink() ? ", a symbolic link" : ""}): others could rewrite the anchors`;
    }
  }
  return undefined;
}
