/**
 * Start path (issue 11): the audit log is continued by reading its tail, not the whole file. A log far larger than
 * memory (a sparse 4.6 GB file: a hole, then the real records) is continued from its last record; reading it
 * whole failed (ENOMEM) and, for real large logs, cost memory in proportion to their size.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { AuditLog, type AuditRecord } from "../../src/log/audit";
import { tmpDir } from "../helpers";

const rec = (i: number): AuditRecord => ({ ts: new Date(0).toISOString(), reqId: `r${i}`, key: null, route: "/v1/models", status: 200, decisions: [], ms: 1, client: "127.0.0.1" });

/** The last line of a file, read from its end. */
function tailLine(file: string): Record<string, unknown> {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size, n = Math.min(4096, size), b = Buffer.alloc(n);
    fs.readSync(fd, b, 0, n, size - n);
    return JSON.parse(b.toString("utf8").trimEnd().split("\n").at(-1)!) as Record<string, unknown>;
  } finally { fs.closeSync(fd); }
}

test("a huge audit log is continued from its last record without reading it whole", () => {
  const file = path.join(tmpDir(), "audit.jsonl");
  const first = new AuditLog(file);
  for (let i = 1; i <= 3; i++) first.append(rec(i));
  first.close();
  const records = fs.readFileSync(file);
  const last = tailLine(file);
  // The same records behind a 4.6 GB hole (sparse: no disk or memory used); a stray partial line before them.
  const hole = 4600 * 1024 * 1024;
  fs.truncateSync(file, 0);
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, Buffer.concat([Buffer.from("{torn\n"), records]), 0, records.length + 6, hole);
  fs.closeSync(fd);
  expect(fs.statSync(file).size).toBeGreaterThan(4.5e9);

  const again = new AuditLog(file);
  again.append(rec(4));
  again.close();
  const next = tailLine(file);
  expect(next).toMatchObject({ reqId: "r4", seq: (last.seq as number) + 1, prev: last.mac });
});

test("a torn last write is still cut off, and an empty or one-line log still opens", () => {
  const dir = tmpDir(), file = path.join(dir, "audit.jsonl");
  const a = new AuditLog(file);
  a.close();
  expect(fs.readFileSync(file, "utf8")).toBe(""); // empty: a new chain
  const b = new AuditLog(file);
  b.append(rec(1));
  b.close();
  const one = tailLine(file);
  fs.appendFileSync(file, '{"ts":"torn'); // a write cut short
  const c = new AuditLog(file);
  c.append(rec(2));
  c.close();
  const lines = fs.readFileSync(file, "utf8").trimEnd().split("\n");
  expect(lines).toHaveLength(2);
  expect(JSON.parse(lines[1]!)).toMatchObject({ reqId: "r2", seq: (one.seq as number) + 1, prev: one.mac });
});

test("one writer per log: a second AuditLog on the same file is refused while the first is open, and opens once it is closed", () => {
  const file = path.join(tmpDir(), "audit.jsonl");
  const first = new AuditLog(file);
  first.append(rec(1));
  expect(() => new AuditLog(file)).toThrow(/another running appliance server/);
  first.append(rec(2));
  first.close();
  const next = new AuditLog(file);
  next.append(rec(3));
  next.close();
  const seqs = fs.readFileSync(file, "utf8").trimEnd().split("\n").map((l) => (JSON.parse(l) as { seq: number }).seq);
  expect(seqs).toEqual([1, 2, 3]);
});
