/**
 * `appliance audit verify`: walks the audit chain over the rotated files and the current one,
 * oldest first, and checks every record's MAC, sequence number and link to the record before it,
 * then every checkpoint (from audit.checkpoints and any given copies, e.g. the journal) against
 * the records. Names the first bad line exactly: file and 1-based line number.
 */
import fs from "node:fs";
import path from "node:path";
import { checkpointsPath, checkpointText, GENESIS, hmac, readAuditKey, splitMac, type Checkpoint } from "./audit";
import { openPlainFile, readPlainFile } from "../util/fs";

export type VerifyResult =
  | { ok: true; records: number; tornTail: boolean; firstSeq: number; lastSeq: number; checkpoints: number; files: string[];
      /** The MAC of the last record (GENESIS for an empty log): where the chain stands. */
      head: string;
      /** Where the last record's line ends: its file's inode and byte offset (absent for an empty log). */
      end?: LogPosition }
  | { ok: false; records: number; file: string; line: number; reason: string };

/** The log's files, oldest first: audit.jsonl.N … audit.jsonl.1, audit.jsonl (plain, uncompressed rotations). */
export function auditFiles(file: string): string[] {
  const dir = path.dirname(file), base = path.basename(file);
  const rotated = fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => new RegExp(`^${base.replace(/\./g, "\\.")}\\.(\\d+)$`).exec(f))
    .filter((m): m is RegExpExecArray => !!m).sort((a, b) => Number(b[1]) - Number(a[1])).map((m) => path.join(dir, m[0])) : [];
  return [...rotated, ...(fs.existsSync(file) ? [file] : [])];
}

/** Checkpoints found in any text: audit.checkpoints lines or the service's JSON log lines ({"auditCheckpoint":{…}}). */
export function parseCheckpoints(text: string): Checkpoint[] {
  return checkpointLines(text).map((x) => x.checkpoint);
}

/** parseCheckpoints with each checkpoint's 1-based line in the text (verify names the line of a bad one). */
function checkpointLines(text: string): { checkpoint: Checkpoint; line: number }[] {
  const out: { checkpoint: Checkpoint; line: number }[] = [];
  for (const [i, line] of text.split("\n").entries()) {
    if (!line.includes('"seq"')) continue;
    const whole = asCheckpoint(line);
    if (whole) { out.push({ checkpoint: whole, line: i + 1 }); continue; }
    // A checkpoint glued onto a torn line (written before the writer cut torn tails off): read from its own start.
    for (let at = line.indexOf('{"ts":', 1); at > 0; at = line.indexOf('{"ts":', at + 1)) {
      const c = asCheckpoint(line.slice(at));
      if (c) { out.push({ checkpoint: c, line: i + 1 }); break; }
    }
  }
  return out;
}

/** A line as a checkpoint (audit.checkpoints' own, or the service log's {"auditCheckpoint":{…}}), if it is one. */
function asCheckpoint(line: string): Checkpoint | undefined {
  let v: unknown;
  try { v = JSON.parse(line); } catch { return undefined; }
  if (v === null || typeof v !== "object") return undefined;
  const c = ((v as { auditCheckpoint?: unknown }).auditCheckpoint ?? v) as Partial<Checkpoint>;
  return typeof c.seq === "number" && typeof c.head === "string" && typeof c.mac === "string" && typeof c.ts === "string" ? c as Checkpoint : undefined;
}

export interface VerifyOptions {
  /** The MAC key; default: read audit.key next to the log (throws if unreadable: without it edits go unseen). */
  key?: Buffer;
  /** Checkpoints from outside the state dir (files given): checked like audit.checkpoints. */
  checkpoints?: Checkpoint[];
  /** The journal's copies of the checkpoints (those since the chain began): checked the same way. */
  journal?: Checkpoint[];
  /**
   * Start after an already verified record instead of at the oldest file (audit anchor's incremental run):
   * the file with this inode is read from `end`, the chain continuing from `seq`/`head`. Records before it
   * are not looked at; line numbers then count from that offset.
   */
  from?: { at: LogPosition; seq: number; head: string };
}

/** A byte position in one of the log's files, named by inode so that it survives renames by rotation. */
export interface LogPosition { ino: number; end: number }

/** A file's bytes from `offset` to its end, and its inode (one descriptor for both). */
function readFrom(file: string, offset: number): { buf: Buffer; ino: number } {
  // A regular file, never through a link or a FIFO the service account planted (root's verify and anchor read it).
  const fd = openPlainFile(file);
  try {
    const st = fs.fstatSync(fd);
    const buf = Buffer.alloc(Math.max(0, st.size - offset));
    for (let got = 0; got < buf.length;) {
      const n = fs.readSync(fd, buf, got, buf.length - got, offset + got);
      if (n === 0) return { buf: buf.subarray(0, got), ino: st.ino };
      got += n;
    }
    return { buf, ino: st.ino };
  } finally { fs.closeSync(fd); }
}

export function verifyAudit(file: string, opts: VerifyOptions = {}): VerifyResult {
  const key = opts.key ?? readAuditKey(file);
  if (!key) throw new Error(`no audit key at ${path.join(path.dirname(file), "audit.key")}: cannot check the MACs`);
  const cpFile = checkpointsPath(file);
  const storedLines = fs.existsSync(cpFile) ? checkpointLines(readPlainFile(cpFile)) : [];
  const stored = storedLines.map((x) => x.checkpoint);
  // Where each came from, so a bad one is named where it is: its line in audit.checkpoints (second fix-attack run: it
  // was the checkpoint's ordinal), 0 for a source without lines of its own.
  const sources = [{ name: cpFile, list: stored, line: (i: number) => storedLines[i]!.line }, { name: "the given checkpoint files", list: opts.checkpoints ?? [], line: () => 0 },
    { name: "the journal (journalctl -u appliance.service)", list: opts.journal ?? [], line: () => 0 }];
  for (const s of sources) {
    for (const [i, c] of s.list.entries()) {
      if (hmac(key, checkpointText(c)) !== c.mac) {
        return { ok: false, records: 0, file: s.name, line: s.line(i), reason: `checkpoint for seq ${c.seq} (${c.ts}) has a wrong MAC (forged or edited)` };
      }
    }
  }
  const checkpoints = sources.flatMap((s) => s.list);
  const wanted = new Map<number, Checkpoint[]>();
  for (const c of checkpoints) wanted.set(c.seq, [...(wanted.get(c.seq) ?? []), c]);

  let files = auditFiles(file);
  let prev: string | undefined, seq = 0, firstSeq = 0, n = 0, tornTail = false, start = 0, end: LogPosition | undefined;
  if (opts.from) {
    const i = files.findIndex((f) => fs.statSync(f).ino === opts.from!.at.ino);
    if (i < 0) throw new Error(`no audit file with inode ${opts.from.at.ino} (rotated away)`);
    files = files.slice(i);
    ({ seq, head: prev } = opts.from);
    firstSeq = seq + 1;
    start = opts.from.at.end;
  }
  const where = new Map<number, { file: string; line: number }>();
  for (const [fi, f] of files.entries()) {
    const base = fi === 0 ? start : 0;
    const { buf, ino } = readFrom(f, base);
    for (let pos = 0, i = 0; pos < buf.length; i++) {
      const nl = buf.indexOf(0x0a, pos);
      const at = { file: f, line: i + 1 };
      if (nl < 0) {
        if (fi === files.length - 1) { tornTail = true; break; } // an unfinished write, not tampering
        return { ok: false, records: n, ...at, reason: "unfinished line in a rotated file (cut short)" };
      }
      const line = buf.toString("utf8", pos, nl);
      pos = nl + 1;
      const parts = splitMac(line);
      let rec: { seq?: unknown; prev?: unknown };
      try { rec = JSON.parse(line); } catch { return { ok: false, records: n, ...at, reason: "not valid JSON" }; }
      if (line.endsWith("\r")) return { ok: false, records: n, ...at, reason: "the line ends in CR LF: the file was rewritten (an editor or a copy with Windows line ends), not as the server writes it" };
      if (!parts || typeof rec.seq !== "number" || typeof rec.prev !== "string") return { ok: false, records: n, ...at, reason: "no seq, prev or mac field" };
      if (hmac(key, parts.body) !== parts.mac) return { ok: false, records: n, ...at, reason: "MAC does not match: this record was edited or forged" };
      if (prev === undefined) {
        // The oldest record we have: the chain's genesis, or a later record when older files were rotated away.
        if (rec.seq === 1 && rec.prev !== GENESIS) return { ok: false, records: n, ...at, reason: "first record does not start from the genesis" };
        // Rotation keeps the records before the live log's first in audit.jsonl.1 (logrotate) or .0 (newsyslog), and
        // drops only the oldest rotated files. A live log that starts past record 1 with no rotated file before it was
        // emptied, cut from its start or deleted while the writer went on: that read as "rotated away" and verified,
        // and root's anchor run anchored it (claims audit).
        if (rec.seq > 1 && f === file && !opts.from) {
          return { ok: false, records: n, ...at, reason: `records 1..${rec.seq - 1} are missing before this line: no rotated file (${path.basename(file)}.1 …) holds them (the log was emptied, cut from its start or deleted)` };
        }
        firstSeq = rec.seq;
      } else if (rec.seq !== seq + 1) {
        // "missing or moved": two swapped lines read as the first one missing (ops run).
        const gap = rec.seq === seq + 2 ? `record ${seq + 1} is` : `records ${seq + 1}..${rec.seq - 1} are`;
        return { ok: false, records: n, ...at, reason: rec.seq > seq + 1 ? `${gap} missing before this line (removed, or moved further down)`
          : `sequence number ${rec.seq} after ${seq}: records reordered or duplicated` };
      } else if (rec.prev !== prev) return { ok: false, records: n, ...at, reason: "chain broken: prev is not the MAC of the record before it" };
      prev = parts.mac;
      seq = rec.seq;
      n++;
      for (const c of wanted.get(seq) ?? []) {
        if (c.head !== prev) return { ok: false, records: n - 1, ...at, reason: `record ${seq} differs from the checkpoint of ${c.ts}: the log was rewritten at or before this line` };
      }
      where.set(seq, at);
      end = { ino, end: base + pos };
    }
  }
  const newest = checkpoints.reduce((m, c) => Math.max(m, c.seq), 0);
  if (newest > seq) {
    const last = files.at(-1) ?? file;
    const c = checkpoints.find((x) => x.seq === newest)!;
    return { ok: false, records: n, file: last, line: (where.get(seq)?.line ?? 0) + 1,
      reason: `the log ends at record ${seq} but the checkpoint of ${c.ts} recorded ${newest}: records were removed from the end (truncated or emptied)` };
  }
  return { ok: true, records: n, tornTail, firstSeq, lastSeq: seq, checkpoints: checkpoints.filter((c) => c.seq >= firstSeq).length, files, head: prev ?? GENESIS, ...(end && { end }) };
}
