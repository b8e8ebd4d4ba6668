/**
 * What the service account can plant in its own state dir (a FIFO, a link to /dev/zero or to a root-only file, a
 * sparse file of a gigabyte without a newline) is never followed, waited on or read whole: by the server at start
 * (the audit log's last line, the lockdown file), at a /metrics scrape (the verify status), or by root's audit
 * anchor, verify and incident snapshot (fix-attack run: the FIFOs hung each of them for good, /dev/zero filled the
 * server, and the snapshot copied /etc/shadow into the evidence archive).
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { readLockdown, lockdownFile } from "../../src/guards/lockdown";
import { readVerifyStatus } from "../../src/integrity/verify-status";
import { verifyAudit } from "../../src/log/audit-verify";
import { lastLine } from "../../src/util/last-line";
import { collectSnapshot } from "../../src/cli/incident-snapshot";
import { DEFAULTS } from "../../src/config/load";
import { tmpDir } from "../helpers";

const fifo = (f: string) => expect(Bun.spawnSync(["mkfifo", f]).exitCode).toBe(0);

test("the audit log's last line: a FIFO is refused at once, a gigabyte without a newline read through, a link not followed", () => {
  const dir = tmpDir();
  const f = path.join(dir, "audit.jsonl");
  fifo(f);
  expect(() => lastLine(f)).toThrow(/not a plain file/);
  fs.rmSync(f);
  fs.writeFileSync(path.join(dir, "real"), '{"a":1}\n');
  fs.symlinkSync(path.join(dir, "real"), f);
  expect(() => lastLine(f)).toThrow(/symbolic link/);
  fs.rmSync(f);
  fs.writeFileSync(f, "");
  fs.truncateSync(f, 1 << 30); // sparse: no blocks, no newline
  expect(lastLine(f)).toEqual({ line: "", end: 0, size: 1 << 30 });
  fs.appendFileSync(f, '\n{"b":2}\n'); // the line before the last newline is read, whatever lies before it
  expect(lastLine(f).line).toBe('{"b":2}');
  expect(() => verifyAudit(path.join(dir, "nope.jsonl"), { key: Buffer.alloc(32) })).not.toThrow(); // missing: nothing to verify
});

test("root's verify and anchor read no FIFO or link at the audit log's path", () => {
  const dir = tmpDir();
  const f = path.join(dir, "audit.jsonl");
  fifo(f);
  expect(() => verifyAudit(f, { key: Buffer.alloc(32) })).toThrow(/not a plain file/);
});

test("the lockdown file and the verify status: a FIFO or /dev/zero is read as nothing, never waited on", () => {
  const stateDir = tmpDir();
  fifo(lockdownFile(stateDir));
  expect(readLockdown(stateDir)).toBe("unreadable"); // the path exists: the guard holds lockdown, as for a directory
  fs.rmSync(lockdownFile(stateDir));
  fs.symlinkSync("/dev/zero", lockdownFile(stateDir));
  expect(readLockdown(stateDir)).toBe("unreadable");
  fs.rmSync(lockdownFile(stateDir));
  expect(readLockdown(stateDir)).toBeUndefined();
  const status = path.join(stateDir, "verify-status.json");
  fifo(status);
  expect(readVerifyStatus(status)).toBeUndefined();
});

test("incident snapshot: a link to a root-only file at the audit log's path is not copied into the archive", async () => {
  const stateDir = tmpDir(), out = tmpDir();
  const secret = path.join(tmpDir(), "secret");
  fs.writeFileSync(secret, "root:SECRET-HASH:20228::::::\n", { mode: 0o600 });
  fs.symlinkSync(secret, path.join(stateDir, "audit.jsonl"));
  const r = await collectSnapshot(out, { config: { ...DEFAULTS, stateDir }, healthUrl: "http://127.0.0.1:9/health", auditLines: 10, logLines: 10 } as never);
  const written = fs.readdirSync(out).map((f) => fs.readFileSync(path.join(out, f), "utf8")).join("\n");
  expect(written).not.toContain("SECRET-HASH");
  expect(r.notes.join("\n")).toMatch(/audit tail: .*symbolic link/);
}, 30_000);

// Fix-attack run: the audit writer appended through whatever was at audit.checkpoints (and, after a rotation, at
// audit.jsonl): a FIFO hung the server in open() for good (SIGTERM too), a link was written through.
test("the audit writer never appends through a FIFO or a link: the write fails at once and is counted", async () => {
  const { AuditLog } = await import("../../src/log/audit");
  const rec = (i: number) => ({ ts: new Date(0).toISOString(), reqId: `r${i}`, key: null, route: "/v1/models", status: 200, decisions: [], ms: 1, client: "127.0.0.1" });
  const dir = tmpDir(), file = path.join(dir, "audit.jsonl"), victim = path.join(dir, "victim.txt");
  fs.writeFileSync(victim, "");
  fs.symlinkSync(victim, path.join(dir, "audit.checkpoints"));
  const errors: unknown[] = [];
  const log = new AuditLog(file, { log: { info: () => {}, error: (o: unknown) => errors.push(o) } });
  log.append(rec(1));
  expect(() => log.checkpoint()).toThrow("symbolic link"); // through the link: refused (the timer logs it)
  expect(fs.readFileSync(victim, "utf8")).toBe("");
  fs.renameSync(file, `${file}.1`); // a rotation, then a FIFO where the new log would be
  fifo(file);
  expect(() => log.append(rec(2))).toThrow(); // at once (before: open() waited for a reader for ever)
  expect(log.writeFailures).toBe(1);
  try { log.close(); } catch { /* its checkpoint is refused too */ }
});

// Claims audit (stop 74): a link planted at keys.json.lock made root's `keys revoke --all` (runbook step 3) fail with a
// bare ELOOP. Still not followed; the command now says what it is and what to do.
test("a link planted at a lock file's path is not followed, and keys commands say what it is and how to go on", async () => {
  const { main } = await import("../../src/main");
  const dir = tmpDir(), victim = path.join(dir, "victim");
  const errs: string[] = [];
  const err = console.error, log = console.log;
  console.log = () => {};
  try { expect(await main(["keys", "create", "--name", "a", "--state-dir", dir])).toBe(0); } finally { console.log = log; }
  fs.writeFileSync(victim, "");
  fs.rmSync(path.join(dir, "keys.json.lock"), { force: true });
  fs.symlinkSync(victim, path.join(dir, "keys.json.lock"));
  console.error = (s: unknown) => { errs.push(String(s)); };
  try { expect(await main(["keys", "revoke", "--all", "--state-dir", dir])).toBe(1); } finally { console.error = err; }
  expect(errs.join("\n")).toContain(`${path.join(dir, "keys.json.lock")} is a symbolic link, not a lock file`);
  expect(errs.join("\n")).toContain("remove it and run the command again");
  expect(fs.lstatSync(path.join(dir, "keys.json.lock")).isSymbolicLink()).toBe(true);
  fs.rmSync(path.join(dir, "keys.json.lock"));
  console.log = () => {};
  try { expect(await main(["keys", "revoke", "--all", "--state-dir", dir])).toBe(0); } finally { console.log = log; }
});
