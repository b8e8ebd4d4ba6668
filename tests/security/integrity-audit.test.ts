/**
 * The audit log against a reader/writer of the log (issue 10, item 3): edits are named at their
 * own line, dropped tails and emptied files are caught by checkpoints, re-chaining needs the MAC
 * key, the service-log copy of the checkpoints catches even a key holder, and the chain continues
 * across rotated files.
 */
import { afterAll, describe, expect, test } from "bun:test";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { AuditLog, auditKeyPath, checkpointsPath, checkpointText, CHECKPOINT_EVERY, GENESIS, hmac, type AuditRecord } from "../../src/log/audit";
import { anchorAudit } from "../../src/log/audit-anchor";
import { parseCheckpoints, verifyAudit } from "../../src/log/audit-verify";
import { main } from "../../src/main";
import { tmpDir } from "../helpers";

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
const rec = (i: number): AuditRecord => ({ ts: `t${i}`, reqId: `r${i}`, key: "k", route: "GET /x", status: 200, decisions: [], ms: 1, client: "c" });

/** A log with n records, closed (so its final checkpoint is written), plus what the service logged to journald. */
function write(n: number, file = path.join((dirs.push(tmpDir("appliance-audit-")), dirs.at(-1)!), "audit.jsonl")) {
  const journal: object[] = [];
  const log = new AuditLog(file, { log: { info: (o) => journal.push(o) } });
  for (let i = 0; i < n; i++) log.append(rec(i));
  log.close();
  return { file, journal, lines: () => fs.readFileSync(file, "utf8").split("\n").slice(0, -1) };
}
const cli = (file: string, ...extra: string[]) => main(["audit", "verify", "--file", file, ...extra]);

describe("chain and MAC", () => {
  test("a clean chain verifies (exit 0); an edited line is named exactly, not the line after it (exit 1)", async () => {
    const { file, lines } = write(5);
    expect(verifyAudit(file)).toMatchObject({ ok: true, records: 5, firstSeq: 1, lastSeq: 5 });
    expect(await cli(file)).toBe(0);
    const l = lines();
    l[2] = l[2]!.replace('"status":200', '"status":201');
    fs.writeFileSync(file, l.join("\n") + "\n");
    expect(verifyAudit(file)).toMatchObject({ ok: false, line: 3, records: 2, reason: expect.stringMatching(/edited or forged/) });
    expect(await cli(file)).toBe(1);
  });

  // Ops run (stop 73): a line rewritten with CR LF read "no seq, prev or mac field".
  test("a line rewritten with CR LF is named as such", () => {
    const { file, lines } = write(3);
    const l = lines();
    l[1] = `${l[1]}\r`;
    fs.writeFileSync(file, l.join("\n") + "\n");
    expect(verifyAudit(file)).toMatchObject({ ok: false, line: 2, reason: expect.stringContaining("the line ends in CR LF") });
  });

  test("a deleted line is named where the gap is", () => {
    const { file, lines } = write(4);
    const l = lines();
    l.splice(1, 1);
    fs.writeFileSync(file, l.join("\n") + "\n");
    expect(verifyAudit(file)).toMatchObject({ ok: false, line: 2, reason: expect.stringMatching(/record 2 is missing before this line \(removed, or moved further down\)/) });
  });

  test("re-chaining the history from the genesis without the key fails at line 1", () => {
    const { file, lines } = write(5);
    const original = lines();
    // The attacker keeps 2 of 5 records and re-chains them with the old sha256 scheme and with a key of their own.
    for (const forge of [(b: string) => crypto.createHash("sha256").update(b).digest("hex"), (b: string) => hmac(crypto.randomBytes(32), b)]) {
      let prev = GENESIS;
      const kept = original.slice(3).map((line, i) => {
        const { seq: _s, prev: _p, mac: _m, ...r } = JSON.parse(line);
        const body = JSON.stringify({ ...r, seq: i + 1, prev });
        prev = forge(body);
        return `${body.slice(0, -1)},"mac":"${prev}"}`;
      });
      fs.writeFileSync(file, kept.join("\n") + "\n");
      expect(verifyAudit(file)).toMatchObject({ ok: false, line: 1, reason: expect.stringMatching(/edited or forged/) });
    }
  });

  test("a crash mid-write keeps every earlier record verifiable, and the next writer repairs the tail", () => {
    const { file } = write(3);
    fs.appendFileSync(file, '{"ts":"t","reqId":"torn","ke');
    expect(verifyAudit(file)).toMatchObject({ ok: true, records: 3, tornTail: true });
    const log = new AuditLog(file);
    log.append(rec(9));
    log.close();
    expect(verifyAudit(file)).toMatchObject({ ok: true, records: 4, tornTail: false });
  });

  test("a log from before MAC'd records is set aside and a new chain starts; a missing key with MAC'd records refuses to start", () => {
    const dir = (dirs.push(tmpDir("appliance-audit-")), dirs.at(-1)!);
    const file = path.join(dir, "audit.jsonl");
    fs.writeFileSync(file, `${JSON.stringify({ ...rec(0), prev: GENESIS })}\n`, { mode: 0o600 });
    const log = new AuditLog(file);
    log.append(rec(1));
    log.close();
    expect(fs.existsSync(`${file}.pre-hmac`)).toBe(true);
    expect(verifyAudit(file)).toMatchObject({ ok: true, records: 1, firstSeq: 1 });
    fs.rmSync(auditKeyPath(file));
    expect(() => new AuditLog(file)).toThrow(/audit\.key is missing but .* has records/);
  });

  // Upgrade run: update (a MAC'd chain with checkpoints), rollback to a release without MACs (it appends plain lines to
  // the same log), update again: the log went aside but its checkpoints stayed, and the new chain failed against them.
  test("a log set aside takes its checkpoints with it: the new chain verifies", () => {
    const dir = (dirs.push(tmpDir("appliance-audit-")), dirs.at(-1)!);
    const file = path.join(dir, "audit.jsonl");
    const first = new AuditLog(file);
    for (let i = 0; i < CHECKPOINT_EVERY + 3; i++) first.append(rec(i));
    first.close();
    expect(fs.existsSync(checkpointsPath(file))).toBe(true);
    fs.appendFileSync(file, `${JSON.stringify({ ...rec(99), prev: GENESIS })}\n`); // what the old release appended
    const again = new AuditLog(file);
    again.append(rec(100));
    again.close();
    expect(fs.existsSync(`${file}.pre-hmac.checkpoints`)).toBe(true);
    expect(verifyAudit(file)).toMatchObject({ ok: true, records: 1, firstSeq: 1 });
  });

  test("the key is 0600 and a group-readable key is refused", () => {
    const { file } = write(1);
    expect(fs.statSync(auditKeyPath(file)).mode & 0o777).toBe(0o600);
    fs.chmodSync(auditKeyPath(file), 0o640);
    expect(() => verifyAudit(file)).toThrow(/readable by group or others/);
  });
});

describe("checkpoints", () => {
  test("dropping the last records or emptying the file is detected (the issue's 131,116-of-131,937 case in small)", async () => {
    const n = 2 * CHECKPOINT_EVERY + 17;
    const { file, lines } = write(n);
    const cps = fs.readFileSync(checkpointsPath(file), "utf8").trim().split("\n").map((l) => JSON.parse(l).seq);
    expect(cps).toEqual([CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY, n]);
    fs.writeFileSync(file, lines().slice(0, n - 10).join("\n") + "\n");
    expect(verifyAudit(file)).toMatchObject({ ok: false, line: n - 9, reason: expect.stringMatching(new RegExp(`ends at record ${n - 10} .* recorded ${n}`)) });
    expect(await cli(file)).toBe(1);
    fs.writeFileSync(file, "");
    expect(verifyAudit(file)).toMatchObject({ ok: false, reason: expect.stringMatching(/removed from the end \(truncated or emptied\)/) });
  });

  // Claims audit (stop 74): a log emptied (or cut from its start, or deleted) while the server went on writing verified,
  // and root's anchor run anchored it: the first record left (seq > 1) was taken as "rotated away", with no rotated file.
  test.each(["emptied", "cut from its start", "deleted"] as const)("a log %s while the writer goes on is detected: no rotated file holds the records before it", async (how) => {
    const { file, lines } = write(CHECKPOINT_EVERY + 20);
    const anchors = path.join(path.dirname(file), "root-only", "audit.anchors");
    expect(anchorAudit(file, anchors).anchored?.seq).toBe(CHECKPOINT_EVERY + 20);
    const log = new AuditLog(file, { log: { info: () => {} } }); // the running server: it holds the chain's head
    if (how === "emptied") fs.truncateSync(file, 0);
    else if (how === "deleted") fs.rmSync(file);
    else fs.writeFileSync(file, lines().slice(30).join("\n") + "\n");
    log.append(rec(1000));
    log.close();
    expect(verifyAudit(file)).toMatchObject({ ok: false, file, line: 1, reason: expect.stringMatching(/records 1\.\.\d+ are missing before this line: no rotated file/) });
    expect(await cli(file, "--checkpoints", anchors)).toBe(1);
    expect(anchorAudit(file, anchors)).toMatchObject({ verify: { ok: false } });
    // A real rotation (copytruncate) keeps the records before in audit.jsonl.1: that still verifies.
  });

  test("after a copytruncate rotation the live log starts past record 1 and verifies; with every rotated file gone it does not", () => {
    const { file } = write(20);
    fs.copyFileSync(file, `${file}.1`);
    fs.truncateSync(file, 0);
    write(5, file);
    expect(verifyAudit(file)).toMatchObject({ ok: true, firstSeq: 1, lastSeq: 25 });
    fs.rmSync(`${file}.1`);
    expect(verifyAudit(file)).toMatchObject({ ok: false, reason: expect.stringMatching(/records 1\.\.20 are missing before this line: no rotated file/) });
  });

  test("a key holder who rewrites the log and audit.checkpoints is still caught by the service-log (journal) copy", async () => {
    const { file, lines, journal } = write(CHECKPOINT_EVERY + 5);
    const key = Buffer.from(fs.readFileSync(auditKeyPath(file), "utf8").trim(), "hex");
    // With the service's rights: drop records 3-5, re-chain and re-MAC everything, rewrite the checkpoint file to match.
    let prev = GENESIS;
    const kept = lines().filter((_, i) => i < 2 || i > 4).map((line, i) => {
      const { seq: _s, prev: _p, mac: _m, ...r } = JSON.parse(line);
      const body = JSON.stringify({ ...r, seq: i + 1, prev });
      prev = hmac(key, body);
      return `${body.slice(0, -1)},"mac":"${prev}"}`;
    });
    fs.writeFileSync(file, kept.join("\n") + "\n");
    const c = { ts: "t", seq: kept.length, head: prev };
    fs.writeFileSync(checkpointsPath(file), JSON.stringify({ ...c, mac: hmac(key, checkpointText(c)) }) + "\n");
    expect(verifyAudit(file).ok).toBe(true); // the local evidence is all consistent now
    const journalFile = path.join(path.dirname(file), "service.log");
    fs.writeFileSync(journalFile, journal.map((o) => JSON.stringify({ level: 30, ...o, msg: "audit checkpoint" })).join("\n") + "\n");
    expect(await cli(file, "--checkpoints", journalFile)).toBe(1);
  });

  test("the root-held anchors (audit anchor, run by the daily root check) catch a key holder's re-chain and truncation", async () => {
    const { file, lines } = write(8);
    const anchors = path.join(path.dirname(file), "root-only", "audit.anchors");
    const anchor = () => main(["audit", "anchor", "--file", file, "--to", anchors]);
    expect(await anchor()).toBe(0);
    expect(fs.readFileSync(anchors, "utf8").trim().split("\n").map((l) => JSON.parse(l).seq)).toEqual([8]);
    expect(fs.statSync(anchors).mode & 0o777).toBe(0o600);
    const key = Buffer.from(fs.readFileSync(auditKeyPath(file), "utf8").trim(), "hex");
    const original = lines();
    /** With the service's rights (it holds the key): keep `keep` records, re-chain them, rewrite audit.checkpoints to match. */
    const rewrite = (keep: (i: number) => boolean, edit = (r: object) => r) => {
      let prev = GENESIS;
      const kept = original.filter((_, i) => keep(i)).map((line, i) => {
        const { seq: _s, prev: _p, mac: _m, ...r } = JSON.parse(line);
        const body = JSON.stringify({ ...edit(r), seq: i + 1, prev });
        prev = hmac(key, body);
        return `${body.slice(0, -1)},"mac":"${prev}"}`;
      });
      fs.writeFileSync(file, kept.join("\n") + "\n");
      const c = { ts: "t", seq: kept.length, head: prev };
      fs.writeFileSync(checkpointsPath(file), JSON.stringify({ ...c, mac: hmac(key, checkpointText(c)) }) + "\n");
      expect(verifyAudit(file).ok).toBe(true); // everything the service can write is consistent again
    };
    rewrite((i) => i !== 2); // drop record 3 of 8, re-chain: 7 records
    expect(verifyAudit(file, { checkpoints: parseCheckpoints(fs.readFileSync(anchors, "utf8")) }))
      .toMatchObject({ ok: false, reason: expect.stringMatching(/removed from the end|differs from the checkpoint/) });
    expect(await cli(file, "--checkpoints", anchors)).toBe(1);
    expect(await anchor()).toBe(1); // and the next root run refuses to anchor the rewritten log
    expect(fs.readFileSync(anchors, "utf8").trim().split("\n")).toHaveLength(1);
    rewrite(() => true); // the original 8 records re-chained with the same key are the original log again
    expect(await cli(file, "--checkpoints", anchors)).toBe(0);
    rewrite(() => true, (r) => ({ ...r, status: 403 })); // every record edited, all 8 re-MAC'd: the anchored head differs
    expect(verifyAudit(file, { checkpoints: parseCheckpoints(fs.readFileSync(anchors, "utf8")) }))
      .toMatchObject({ ok: false, line: 8, reason: expect.stringMatching(/differs from the checkpoint/) });
  });

  // Claims audit (stop 74): with the anchors' dir or file handed to the service account, root's anchor run appended
  // to them silently (the account could then rewrite the anchors and the log alike).
  test.skipIf(process.getuid?.() !== 0)("root's anchor run refuses anchors others could write: the dir or file not root's, open to others, or a link", async () => {
    const { file } = write(3);
    const dir = path.join(path.dirname(file), "root-only"), anchors = path.join(dir, "audit.anchors");
    expect(await main(["audit", "anchor", "--file", file, "--to", anchors])).toBe(0);
    for (const [p, tamper] of [[dir, () => fs.chmodSync(dir, 0o777)], [dir, () => fs.chownSync(dir, 65534, 0)],
      [anchors, () => fs.chmodSync(anchors, 0o666)], [anchors, () => fs.chownSync(anchors, 65534, 0)]] as const) {
      tamper();
      try {
        expect(anchorAudit(file, anchors)).toMatchObject({ verify: { ok: false, file: anchors, reason: expect.stringMatching(new RegExp(`^${p}( must be root's.*others could rewrite the anchors)`)) } });
        expect(await main(["audit", "anchor", "--file", file, "--to", anchors])).toBe(1);
      } finally { fs.chmodSync(dir, 0o700); fs.chownSync(dir, 0, 0); fs.chmodSync(anchors, 0o600); fs.chownSync(anchors, 0, 0); }
    }
    fs.renameSync(anchors, `${anchors}.real`);
    fs.symlinkSync(`${anchors}.real`, anchors);
    expect(anchorAudit(file, anchors)).toMatchObject({ verify: { ok: false, reason: expect.stringContaining("a symbolic link") } });
  });

  test("audit anchor is incremental: it reads only the records since the last anchor; --full and any doubt walk the whole log", () => {
    const { file } = write(50);
    const anchors = path.join(path.dirname(file), "root-only", "audit.anchors");
    const first = anchorAudit(file, anchors);
    expect(first).toMatchObject({ incremental: false, anchored: { seq: 50, at: { ino: fs.statSync(file).ino, end: fs.statSync(file).size } } });
    write(30, file); // the service goes on writing (a new writer continues the chain)
    const second = anchorAudit(file, anchors);
    expect(second).toMatchObject({ incremental: true, verify: { ok: true, records: 30, firstSeq: 51, lastSeq: 80 }, anchored: { seq: 80 } });
    // Record 10 (anchored long ago) edited in place: the 5-minute run does not re-read it, the daily --full run names it.
    const l = fs.readFileSync(file, "utf8").split("\n");
    l[9] = l[9]!.replace('"status":200', '"status":201');
    fs.writeFileSync(file, l.join("\n"));
    write(5, file);
    expect(anchorAudit(file, anchors)).toMatchObject({ incremental: true, verify: { ok: true, records: 5 }, anchored: { seq: 85 } });
    expect(anchorAudit(file, anchors, { full: true })).toMatchObject({ incremental: false, verify: { ok: false, line: 10, reason: expect.stringMatching(/edited or forged/) } });
    l[9] = l[9]!.replace('"status":201', '"status":200');
    fs.writeFileSync(file, l.join("\n"));
    write(5, file);
    // Truncated below the last anchor (and audit.checkpoints rewritten with the key): the recorded position is gone,
    // so the run falls back to the whole log, which says what happened.
    const key = Buffer.from(fs.readFileSync(auditKeyPath(file), "utf8").trim(), "hex");
    const kept = fs.readFileSync(file, "utf8").split("\n").slice(0, 70);
    fs.writeFileSync(file, kept.join("\n") + "\n");
    const c = { ts: "t", seq: 70, head: JSON.parse(kept.at(-1)!).mac };
    fs.writeFileSync(checkpointsPath(file), JSON.stringify({ ...c, mac: hmac(key, checkpointText(c)) }) + "\n");
    expect(anchorAudit(file, anchors)).toMatchObject({ incremental: false, verify: { ok: false, reason: expect.stringMatching(/removed from the end/) } });
  });

  test("after a copytruncate rotation the anchor run walks the whole chain once, then is incremental again", () => {
    const { file } = write(20);
    const anchors = path.join(path.dirname(file), "root-only", "audit.anchors");
    expect(anchorAudit(file, anchors).anchored?.seq).toBe(20);
    fs.copyFileSync(file, `${file}.1`);
    fs.truncateSync(file, 0);
    write(10, file);
    expect(anchorAudit(file, anchors)).toMatchObject({ incremental: false, verify: { ok: true, records: 30 }, anchored: { seq: 30, at: { ino: fs.statSync(file).ino } } });
    write(10, file);
    expect(anchorAudit(file, anchors)).toMatchObject({ incremental: true, verify: { ok: true, records: 10 }, anchored: { seq: 40 } });
  });

  test("a checkpoint a log reader adds (no key) is refused as forged", () => {
    const { file } = write(3);
    fs.appendFileSync(checkpointsPath(file), JSON.stringify({ ts: "t", seq: 99, head: "0".repeat(64), mac: "0".repeat(64) }) + "\n");
    expect(verifyAudit(file)).toMatchObject({ ok: false, line: 2, reason: expect.stringMatching(/wrong MAC/) });
  });
});

// Operations run: `audit verify --journal` (runbook step 4) on a host whose journal holds none of the service's
// checkpoints said "ok, … checkpoint(s) matched" as without --journal: the copy it is asked to check was absent.
const journalOf = Bun.which("journalctl") ? Bun.spawnSync(["journalctl", "-u", "appliance.service", "-o", "cat", "--no-pager"], { stdout: "pipe" }) : undefined;
const noServiceJournal = journalOf?.exitCode === 0 && !journalOf.stdout.toString().includes("audit checkpoint");
if (!noServiceJournal) console.error("!!! SKIPPED: audit verify --journal with an empty journal: journalctl missing, or this host's journal has appliance.service lines");
test.skipIf(!noServiceJournal)("audit verify --journal fails when the journal holds none of the chain's checkpoints, saying so", async () => {
  const { file } = write(5);
  const out: string[] = [];
  const log = console.log;
  console.log = (s: string) => { out.push(s); };
  try {
    expect(await cli(file, "--journal")).toBe(1);
  } finally { console.log = log; }
  expect(out.join("\n")).toContain("the journal (journalctl -u appliance.service) holds no checkpoint of this chain");
  expect(await cli(file)).toBe(0); // without --journal nothing was asked of it
  // Nor when the state dir's own checkpoints are gone too (a rewrite of the state dir deletes them).
  fs.rmSync(checkpointsPath(file));
  console.log = () => {};
  try { expect(await cli(file, "--journal")).toBe(1); } finally { console.log = log; }
});

describe("rotation", () => {
  test("the chain continues across renamed and copy-truncated files; a gap between files is caught", () => {
    const { file } = write(30);
    fs.renameSync(file, `${file}.1`); // logrotate's default: rename, the writer creates a new file
    write(20, file);
    fs.copyFileSync(file, `${file}.2.tmp`);
    fs.renameSync(`${file}.1`, `${file}.2`);
    fs.renameSync(`${file}.2.tmp`, `${file}.1`);
    fs.truncateSync(file, 0); // copytruncate
    write(10, file);
    expect(verifyAudit(file)).toMatchObject({ ok: true, records: 60, firstSeq: 1, lastSeq: 60 });
    fs.rmSync(`${file}.2`); // the oldest file rotated away: still a valid (shorter) chain
    expect(verifyAudit(file)).toMatchObject({ ok: true, records: 30, firstSeq: 31 });
    const l = fs.readFileSync(`${file}.1`, "utf8").split("\n");
    fs.writeFileSync(`${file}.1`, l.slice(0, -2).join("\n") + "\n"); // drop the last record of the rotated file
    expect(verifyAudit(file)).toMatchObject({ ok: false, file, line: 1, reason: expect.stringMatching(/record 50 is missing/) });
  });

  test("newsyslog's layout (macOS): the newest rotation is audit.jsonl.0; a restarted writer continues the chain from it", () => {
    const { file } = write(30);
    fs.renameSync(file, `${file}.0`); // newsyslog: rename to .0, the writer creates a new file
    write(20, file);
    fs.renameSync(`${file}.0`, `${file}.1`);
    fs.renameSync(file, `${file}.0`);
    write(10, file);
    expect(verifyAudit(file)).toMatchObject({ ok: true, records: 60, firstSeq: 1, lastSeq: 60 });
  });
});

describe("the compiled binary", () => {
  test("serve writes a MAC'd checkpoint to its own log at exit; `audit verify --checkpoints` catches a tail dropped and re-anchored with the key", async () => {
    const { builtBinary, tinyModel } = await import("../helpers");
    const work = (dirs.push(tmpDir("appliance-audit-bin-")), dirs.at(-1)!);
    const bin = path.join(work, "appliance");
    fs.copyFileSync(await builtBinary(), bin);
    fs.chmodSync(bin, 0o755);
    const stateDir = path.join(work, "state");
    const env = { PATH: "/usr/bin:/bin", HOME: work };
    const run = (args: string[]) => Bun.spawnSync([bin, ...args], { cwd: work, env });
    expect(run(["models", "add", await tinyModel(), "--name", "tiny", "--state-dir", stateDir]).exitCode).toBe(0);
    const key = run(["keys", "create", "--name", "a", "--state-dir", stateDir]).stdout.toString().trim();
    const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0"], { cwd: work, env, stdout: "pipe", stderr: "pipe" });
    let out = "";
    const reader = proc.stdout.getReader();
    while (!out.includes('"msg":"listening"')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`serve ended: ${out}`);
      out += new TextDecoder().decode(value);
    }
    const port = Number(/"port":(\d+)/.exec(out)![1]);
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      expect(r.status).toBe(200);
    }
    proc.kill("SIGTERM");
    for (;;) { const { value, done } = await reader.read(); if (done) break; out += new TextDecoder().decode(value); }
    expect(await proc.exited).toBe(0);
    const serviceLog = path.join(work, "service.log");
    fs.writeFileSync(serviceLog, out);
    expect(out).toMatch(/"msg":"audit checkpoint"/);
    const file = path.join(stateDir, "audit.jsonl");
    expect(run(["audit", "verify", "--file", file, "--checkpoints", serviceLog]).exitCode).toBe(0);
    // As the service account: drop the last 2 records and rewrite audit.checkpoints to match (the key is readable to it).
    const keyBuf = Buffer.from(fs.readFileSync(auditKeyPath(file), "utf8").trim(), "hex");
    const lines = fs.readFileSync(file, "utf8").trim().split("\n").slice(0, -2);
    fs.writeFileSync(file, lines.join("\n") + "\n");
    const last = JSON.parse(lines.at(-1)!);
    const c = { ts: "t", seq: last.seq, head: last.mac };
    fs.writeFileSync(checkpointsPath(file), JSON.stringify({ ...c, mac: hmac(keyBuf, checkpointText(c)) }) + "\n");
    expect(run(["audit", "verify", "--file", file]).exitCode).toBe(0);
    const caught = run(["audit", "verify", "--file", file, "--checkpoints", serviceLog]);
    expect(caught.exitCode).toBe(1);
    expect(caught.stdout.toString()).toMatch(/records were removed from the end/);
  }, 240_000);

  // Claims audit (stop 74), as it happened to a user: the log emptied while the server ran, the server went on writing,
  // and `audit verify` and `audit anchor` said ok (fails on 521fcd0's binary).
  test("a log emptied while serve runs: audit verify and audit anchor fail once the server has written after it", async () => {
    const { builtBinary, tinyModel } = await import("../helpers");
    const work = (dirs.push(tmpDir("appliance-audit-empty-")), dirs.at(-1)!);
    const bin = await builtBinary(), stateDir = path.join(work, "state"), env = { PATH: "/usr/bin:/bin", HOME: work };
    const run = (args: string[]) => Bun.spawnSync([bin, ...args], { cwd: work, env });
    expect(run(["models", "add", await tinyModel(), "--name", "tiny", "--state-dir", stateDir]).exitCode).toBe(0);
    const key = run(["keys", "create", "--name", "a", "--state-dir", stateDir]).stdout.toString().trim();
    const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0"], { cwd: work, env, stdout: "pipe", stderr: "pipe" });
    const reader = proc.stdout.getReader();
    let out = "";
    try {
      while (!out.includes('"msg":"listening"')) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`serve ended: ${out}`);
        out += new TextDecoder().decode(value);
      }
      const port = Number(/"port":(\d+)/.exec(out)![1]);
      const get = async () => expect((await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
      for (let i = 0; i < 3; i++) await get();
      const file = path.join(stateDir, "audit.jsonl"), anchors = path.join(work, "root-only", "audit.anchors");
      expect(run(["audit", "anchor", "--file", file, "--to", anchors]).exitCode).toBe(0);
      fs.truncateSync(file, 0); // with the service account's rights
      await get(); // the server writes on, continuing the chain
      const verified = run(["audit", "verify", "--file", file]);
      expect(verified.exitCode).toBe(1);
      expect(verified.stdout.toString()).toMatch(/records 1\.\.\d+ are missing before this line: no rotated file/);
      expect(run(["audit", "anchor", "--file", file, "--to", anchors]).exitCode).toBe(1);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 240_000);
});
