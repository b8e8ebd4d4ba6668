/**
 * Append-only, hash-chained audit log (JSONL). Each record carries the sha256
 * of the previous line, so editing or deleting any line breaks the chain from
 * there on. A torn last line (crash mid-write) is cut off when the log is next
 * opened, so every earlier record still verifies.
 */
import { sha256Bytes } from "../util/sha256";
import fs from "node:fs";
import path from "node:path";

export const GENESIS = "0".repeat(64);
const sha256 = sha256Bytes;

export interface AuditRecord {
  ts: string;
  reqId: string;
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

export class AuditLog {
  private prev = GENESIS;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    if (!fs.existsSync(file)) { fs.writeFileSync(file, "", { mode: 0o600 }); return; }
    const text = fs.readFileSync(file, "utf8");
    const end = text.lastIndexOf("\n") + 1;
    if (end < text.length) fs.truncateSync(file, Buffer.byteLength(text.slice(0, end))); // repair a torn write
    const last = text.slice(0, end).trimEnd().split("\n").at(-1);
    if (last) this.prev = sha256(last);
  }

  append(rec: AuditRecord) {
    const line = JSON.stringify({ ...rec, prev: this.prev });
    fs.appendFileSync(this.file, line + "\n", { mode: 0o600 });
    this.prev = sha256(line);
  }
}

export type VerifyResult = { ok: true; records: number; tornTail: boolean } | { ok: false; records: number; line: number; reason: string };

/** Checks the chain; reports the first broken line (1-based). */
export function verifyAudit(file: string): VerifyResult {
  const text = fs.readFileSync(file, "utf8");
  const lines = text.split("\n");
  const tornTail = lines.at(-1) !== "";
  if (!tornTail) lines.pop();
  let prev = GENESIS, n = 0;
  for (const [i, line] of lines.entries()) {
    if (tornTail && i === lines.length - 1) break; // an unfinished write, not tampering
    let rec: { prev?: unknown };
    try { rec = JSON.parse(line); } catch { return { ok: false, records: n, line: i + 1, reason: "not valid JSON" }; }
    if (rec.prev !== prev) return { ok: false, records: n, line: i + 1, reason: "hash chain broken (record edited, removed or reordered)" };
    prev = sha256(line);
    n++;
  }
  return { ok: true, records: n, tornTail };
}
