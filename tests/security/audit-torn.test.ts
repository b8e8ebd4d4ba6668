/**
 * Resilience run: a crash or power loss in the middle of an append leaves a torn last line. In audit.checkpoints, the
 * next checkpoint was glued onto it ({"ts":"…06:3{"ts":…,"seq":16,…}), verify could not read it, and dropping the
 * newest records then went unseen ("ok, 1 checkpoint(s) matched"). A torn last audit record was cut off at the
 * next start without a word.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { AuditLog, checkpointsPath, type AuditRecord } from "../../src/log/audit";
import { parseCheckpoints, verifyAudit } from "../../src/log/audit-verify";
import { tmpDir } from "../helpers";

const rec = (i: number): AuditRecord => ({ ts: new Date(0).toISOString(), reqId: `r${i}`, key: null, route: "/v1/models", status: 200, decisions: [], ms: 1, client: "127.0.0.1" });
/** A new chain of `n` records, closed (a checkpoint at seq n); its log file. */
function chain(n: number): string {
  const file = path.join(tmpDir(), "audit.jsonl");
  const log = new AuditLog(file);
  for (let i = 1; i <= n; i++) log.append(rec(i));
  log.close();
  return file;
}
const warnings = () => {
  const seen: string[] = [];
  return { seen, log: { info: () => {}, warn: (_: object, msg: string) => { seen.push(msg); } } };
};

test("a torn last checkpoint line: the next start cuts it off (and says so), so dropping the newest records is detected", () => {
  const file = chain(3); // checkpoint at seq 3
  fs.appendFileSync(checkpointsPath(file), '{"ts":"2026-12-02T06:3'); // the crash
  const w = warnings();
  const again = new AuditLog(file, { log: w.log });
  for (let i = 4; i <= 6; i++) again.append(rec(i));
  again.close(); // checkpoint at seq 6: on its own line
  expect(w.seen).toEqual(["audit: an unfinished last checkpoint was removed"]);
  expect(parseCheckpoints(fs.readFileSync(checkpointsPath(file), "utf8")).map((c) => c.seq)).toEqual([3, 6]);
  expect(verifyAudit(file).ok).toBe(true);
  // Drop the last three records: verify must now fail against the checkpoint at seq 6.
  const lines = fs.readFileSync(file, "utf8").split("\n").filter(Boolean);
  fs.writeFileSync(file, lines.slice(0, 3).join("\n") + "\n");
  expect(verifyAudit(file).ok).toBe(false);
});

test("a checkpoint an older build glued onto a torn line is still read", () => {
  const file = chain(2);
  const cp = fs.readFileSync(checkpointsPath(file), "utf8").trim();
  fs.writeFileSync(checkpointsPath(file), `{"ts":"2026-12-02T06:3${cp}\n`);
  expect(parseCheckpoints(fs.readFileSync(checkpointsPath(file), "utf8")).map((c) => c.seq)).toEqual([2]);
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").split("\n")[0] + "\n"); // the last record dropped
  expect(verifyAudit(file).ok).toBe(false);
});

test("a torn last audit record is removed at the next start with a warning", () => {
  const file = chain(1);
  fs.appendFileSync(file, '{"ts":"2026-12-02T06:31:00.000Z","reqId":"req_x","seq":2,"pr');
  const w = warnings();
  const again = new AuditLog(file, { log: w.log });
  again.append(rec(2));
  again.close();
  expect(w.seen).toEqual(["audit: an unfinished last record (a write cut off by a crash or power loss) was removed"]);
  expect(verifyAudit(file).ok).toBe(true);
});

test("a forged checkpoint is named at its own line of audit.checkpoints (not its place among the checkpoints)", () => {
  const file = chain(1);
  const cp = JSON.parse(fs.readFileSync(checkpointsPath(file), "utf8").trim());
  fs.writeFileSync(checkpointsPath(file), `garbage\n\n{"note":1}\n${JSON.stringify({ ...cp, mac: "0".repeat(64) })}\n`);
  expect(verifyAudit(file)).toMatchObject({ ok: false, line: 4 });
});
