/**
 * Resilience run: with the process out of file descriptors (EMFILE: a flood of idle connections past the open-file
 * limit), each audit record opened the log anew, failed, and the answered request's record was lost. The writer now
 * keeps the log's descriptor open between records (util/fs Appender), and still follows a rotation.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { verifyAudit } from "../../src/log/audit-verify";
import { tmpDir } from "../helpers";

const child = `
import fs from "node:fs";
import { AuditLog } from ${JSON.stringify(path.resolve(import.meta.dir, "../../src/log/audit.ts"))};
const rec = (i) => ({ ts: new Date(0).toISOString(), reqId: "r" + i, key: null, route: "/v1/models", status: 200, decisions: [], ms: 1, client: "127.0.0.1" });
const log = new AuditLog(process.argv[2]);
log.append(rec(1));
const held = [];
try { for (;;) held.push(fs.openSync("/dev/null", "r")); } catch (e) { if (e.code !== "EMFILE") throw e; }
log.append(rec(2)); // no descriptor left to open one with
for (const fd of held) fs.closeSync(fd);
log.close();
console.log("ok");
`;

test("an audit record is written while the process has no file descriptor left", () => {
  const dir = tmpDir(), file = path.join(dir, "audit.jsonl"), script = path.join(dir, "child.mjs");
  fs.writeFileSync(script, child);
  const r = Bun.spawnSync(["prlimit", "--nofile=256", process.execPath, script, file], { stderr: "pipe" });
  expect(r.stderr.toString()).toBe("");
  expect([r.exitCode, r.stdout.toString().trim()]).toEqual([0, "ok"]);
  expect(fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l).reqId)).toEqual(["r1", "r2"]);
  expect(verifyAudit(file).ok).toBe(true);
});

test("a log renamed away (rotation) is followed: the next record opens the new file and the chain goes on", async () => {
  const { AuditLog } = await import("../../src/log/audit");
  const dir = tmpDir(), file = path.join(dir, "audit.jsonl");
  const rec = (i: number) => ({ ts: new Date(0).toISOString(), reqId: `r${i}`, key: null, route: "/v1/models", status: 200, decisions: [], ms: 1, client: "127.0.0.1" });
  const log = new AuditLog(file);
  log.append(rec(1));
  fs.renameSync(file, `${file}.1`);
  log.append(rec(2));
  log.close();
  expect(fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l).reqId)).toEqual(["r2"]);
  expect(verifyAudit(file).ok).toBe(true);
});
