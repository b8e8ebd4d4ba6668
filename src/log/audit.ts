/**
 * Append-only audit log (JSONL), anchored so that a reader of the log cannot rewrite it unnoticed.
 * Each record carries a sequence number, the MAC of the record before it (`prev`) and its own
 * `mac`: HMAC-SHA256 keyed with audit.key (0600, held by the service and root, not by a reader of
 * the log). Editing, removing or reordering any record breaks the chain at that very line;
 * re-chaining needs the key. Every CHECKPOINT_EVERY records, every CHECKPOINT_MS and at exit the
 * writer records a MAC'd checkpoint (sequence number + head MAC) outside the log: a line in
 * audit.checkpoints and a line in the service log (stdout → journald), so dropping the last records
 * or emptying the file is detected too. Sequence numbers and the chain continue across rotated
 * files (audit.jsonl.1, .2, … — renamed or copy-truncated). A torn last line (crash mid-write) is
 * cut off when the log is next opened, so every earlier record still verifies.
 */
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-write";
import { holdFileLock, withFileLockSync } from "../util/file-lock";
import { Appender, appendWhole, openPlainFile, readFd } from "../util/fs";
import { lastLine } from "../util/last-line";
import { randomBytes } from "../util/random";

export const GENESIS = "0".repeat(64);
/** A checkpoint after this many records… */
export const CHECKPOINT_EVERY = 100;
/** …or after this long with unanchored records. */
export const CHECKPOINT_MS = 60_000;

export interface AuditRecord {
  ts: string;
  reqId: string;
  /** W3C trace id of the request (its traceparent's, or one we started). */
  traceId?: string;
  key: string | null;
  route: string;
  status: number;
  model?: string;
  promptTokens?: number;
  completionTokens?: number;
  decisions: string[];
  ms: number;
  client: string;
}

/** What one request was: the request log line and the audit record are both built from this one object. */
export type RequestSummary = Omit<AuditRecord, "ts">;

export interface Checkpoint { ts: string; seq: number; head: string; mac: string }

export class AuditError extends Error {}

export const auditKeyPath = (logFile: string) => path.join(path.dirname(logFile), "audit.key");
export const checkpointsPath = (logFile: string) => path.join(path.dirname(logFile), "audit.checkpoints");

export const hmac = (key: Buffer, text: string) => new Bun.CryptoHasher("sha256", key).update(text).digest("hex");
export const checkpointText = (c: Omit<Checkpoint, "mac">) => `audit-checkpoint\n${c.seq}\n${c.head}\n${c.ts}`;
const MAC_TAIL = /,"mac":"([0-9a-f]{64})"\}$/;

/** Splits a written line into the MAC'd body and its MAC; undefined if it has none. */
export function splitMac(line: string): { body: string; mac: string } | undefined {
  const m = MAC_TAIL.exec(line);
  return m ? { body: line.slice(0, m.index) + "}", mac: m[1]! } : undefined;
}

/** Reads audit.key, never through a symlink; undefined if it does not exist. */
export function readAuditKey(logFile: string): Buffer | undefined {
  const file = auditKeyPath(logFile);
  if (!fs.existsSync(file)) return undefined;
  const fd = openPlainFile(file);
  try {
    if ((fs.fstatSync(fd).mode & 0o077) !== 0) throw new AuditError(`${file} is readable by group or others; run: chmod 600 ${file}`);
    const hex = readFd(fd).toString("utf8").trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new AuditError(`${file} is not a 64-hex-digit audit key`);
    return Buffer.from(hex, "hex");
  } finally { fs.closeSync(fd); }
}


/** Where the chain stands at the end of a log line (seq and MAC), or undefined for an empty file. */
function headOf(line: string, file: string): { seq: number; mac: string } | undefined {
  if (!line) return undefined;
  const parts = splitMac(line);
  let seq: unknown;
  try { seq = (JSON.parse(line) as { seq?: unknown }).seq; } catch { /* reported below */ }
  if (!parts || typeof seq !== "number") {
    throw new AuditError(`${file}: its last record has no sequence number or MAC (written by an older version?); move it aside to start a new chain`);
  }
  return { seq, mac: parts.mac };
}

const open = new Set<AuditLog>();
let exitHook = false;

export interface AuditLogOptions {
  /** Where checkpoints also go: the service log (journald under systemd), out of the service account's reach. */
  log?: { info(obj: object, msg: string): void; warn?(obj: object, msg: string): void; error?(obj: object, msg: string): void };
  clock?: () => number;
  /** How often a checkpoint is written while records come in (tests shorten it). */
  checkpointMs?: number;
}

/**
 * Whether a running server writes this state dir's audit log: it holds the log's writer lock for its life. The lock
 * file is not created when there is none (root asking about the service's state dir would own it).
 */
export function auditWriterRunning(stateDir: string): boolean {
  const log = path.join(stateDir, "audit.jsonl");
  if (!fs.existsSync(`${log}.lock`)) return false;
  const free = holdFileLock(log);
  free?.release();
  return free === undefined;
}

/** A plain file's last line and size (lastLine), else undefined: nothing there, or something else, left to its writer. */
function plainTail(file: string): ReturnType<typeof lastLine> | undefined {
  try { return lastLine(file); } catch { return undefined; }
}

export class AuditLog {
  private prev = GENESIS;
  private seq = 0;
  private anchored = 0;
  private readonly key: Buffer;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly writer: { release(): void };
  /** The log's descriptor, kept open between records (util/fs Appender). */
  private readonly out: Appender;
  /** Records that could not be written (a full disk): each left nothing in the log (metrics: appliance_audit_write_failures_total). */
  writeFailures = 0;

  constructor(readonly file: string, private readonly opts: AuditLogOptions = {}) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // One writer per chain: the sequence number and the previous MAC live in this object, so a second server on the
    // same state dir (a `serve` run by hand beside the service) would write duplicate sequence numbers, and the log
    // would fail verification for good. Held for this object's life; the kernel drops it if the process dies.
    const writer = holdFileLock(file);
    if (!writer) {
      throw new AuditError(`${file} is being written by another running appliance server (the installed service?): one server per state dir, or the audit chain breaks. Stop the other one first (systemctl stop appliance), or give this one its own --state-dir`);
    }
    this.writer = writer;
    try { this.key = this.openChain(); } catch (e) { writer.release(); throw e; }
    this.out = new Appender(file);
    // A timed checkpoint that fails (its directory gone, a full disk) is logged, never thrown from the timer, where it
    // would end the process; the next append fails loudly on its own.
    this.timer = setInterval(() => this.checkpointOrLog(), opts.checkpointMs ?? CHECKPOINT_MS);
    this.timer.unref?.();
    open.add(this);
    if (!exitHook) {
      exitHook = true;
      process.on("exit", () => { for (const l of open) try { l.checkpoint(); } catch { /* exiting anyway */ } });
    }
  }

  /** The key, a repaired tail and where the chain stands (seq, previous MAC). */
  private openChain(): Buffer {
    const file = this.file;
    const key = withFileLockSync(auditKeyPath(file), () => {
      this.setAsideLegacy();
      const existing = readAuditKey(file);
      if (existing) return existing;
      const { line } = lastLine(file);
      if (line) throw new AuditError(`${auditKeyPath(file)} is missing but ${file} has records: the chain cannot be continued; restore the key or move the log aside`);
      const fresh = randomBytes(32);
      writeFileAtomic(auditKeyPath(file), fresh.toString("hex") + "\n", { mode: 0o600 });
      return fresh;
    });
    const cur = lastLine(file);
    if (cur.end < cur.size) { // repair a torn write, and say so: a crash may have cut off a request's record (resilience run)
      fs.truncateSync(file, cur.end);
      this.opts.log?.warn?.({ file, bytes: cur.size - cur.end }, "audit: an unfinished last record (a write cut off by a crash or power loss) was removed");
    }
    // The same for the checkpoints file: a torn last line would glue the next checkpoint onto it, and verify would not
    // read that checkpoint (dropping the newest records then went unseen).
    const cps = checkpointsPath(file), cpTail = plainTail(cps);
    if (cpTail && cpTail.end < cpTail.size) {
      fs.truncateSync(cps, cpTail.end);
      this.opts.log?.warn?.({ file: cps, bytes: cpTail.size - cpTail.end }, "audit: an unfinished last checkpoint was removed");
    }
    if (!fs.existsSync(file)) fs.writeFileSync(file, "", { mode: 0o600 });
    // Just rotated (empty file): the chain continues from the newest rotated file (.0 where newsyslog rotates, macOS; .1 for logrotate).
    const head = headOf(cur.line, file) ?? headOf(lastLine(`${file}.0`).line, `${file}.0`) ?? headOf(lastLine(`${file}.1`).line, `${file}.1`);
    if (head) { this.seq = head.seq; this.prev = head.mac; }
    this.anchored = this.seq;
    return key;
  }

  /**
   * A log written before records carried a MAC (no seq, no mac) cannot be continued: it is renamed to
   * audit.jsonl.pre-hmac(-<time>) — still verifiable by hand with the old sha256 chain — and a new chain starts.
   */
  private setAsideLegacy() {
    const { line } = lastLine(this.file);
    let rec: { seq?: unknown; mac?: unknown } | undefined;
    try { rec = line ? JSON.parse(line) : undefined; } catch { return; }
    if (!rec || rec.seq !== undefined || rec.mac !== undefined) return;
    let aside = `${this.file}.pre-hmac`;
    if (fs.existsSync(aside)) aside += `-${Date.now()}`;
    fs.renameSync(this.file, aside);
    // Its checkpoints go with it (upgrade run: an update, a rollback to a release without MACs that appended to the
    // same log, then an update again: the new chain's seq 1 was held to the old chain's checkpoints, "rewritten").
    const cps = checkpointsPath(this.file);
    if (fs.existsSync(cps)) fs.renameSync(cps, `${aside}.checkpoints`);
    this.opts.log?.info({ file: aside }, "audit log from before MAC'd records set aside; a new chain starts");
  }

  append(rec: AuditRecord) {
    const body = JSON.stringify({ ...rec, seq: this.seq + 1, prev: this.prev });
    const mac = hmac(this.key, body);
    try {
      this.out.append(`${body.slice(0, -1)},"mac":"${mac}"}\n`);
    } catch (e) {
      this.writeFailures++;
      throw e;
    }
    this.seq++;
    this.prev = mac;
    // The record is written: a checkpoint that fails now (a full disk) is logged as such, not as a lost record.
    if (this.seq - this.anchored >= CHECKPOINT_EVERY) this.checkpointOrLog();
  }

  /** A checkpoint whose failure (its directory gone, a full disk) is logged, not thrown: the timer's and append's. */
  private checkpointOrLog() {
    try { this.checkpoint(); } catch (err) { this.opts.log?.error?.({ err }, "audit checkpoint failed"); }
  }

  /** Records where the chain stands, outside the log; a no-op when nothing was appended since the last one. */
  checkpoint() {
    if (this.seq === this.anchored) return;
    const c = { ts: new Date((this.opts.clock ?? Date.now)()).toISOString(), seq: this.seq, head: this.prev };
    const cp: Checkpoint = { ...c, mac: hmac(this.key, checkpointText(c)) };
    this.anchored = this.seq;
    try { this.opts.log?.info({ auditCheckpoint: cp }, "audit checkpoint"); } catch { /* the file copy still stands */ }
    appendWhole(checkpointsPath(this.file), JSON.stringify(cp) + "\n");
  }

  close() {
    try { this.checkpoint(); } finally {
      clearInterval(this.timer);
      open.delete(this);
      this.out.close();
      this.writer.release();
    }
  }
}
