/**
 * The audit log writes a checkpoint on a timer. A timed checkpoint that cannot be written (its directory removed, a
 * full disk) must be logged, not thrown from the timer: an exception there ends the server process (seen in a CI run
 * as an uncaught ENOENT from a test app's timer after its temp dir was removed).
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { AuditLog, type AuditRecord } from "../../src/log/audit";
import { tmpDir, until } from "../helpers";

const rec: AuditRecord = { ts: new Date(0).toISOString(), reqId: "r1", key: null, route: "/v1/models", status: 200, decisions: [], ms: 1, client: "127.0.0.1" };

test("a timed checkpoint that fails is logged, and the process goes on", async () => {
  const dir = tmpDir();
  const errors: string[] = [];
  const log = { info: () => {}, error: (_: object, msg: string) => { errors.push(msg); } };
  const audit = new AuditLog(path.join(dir, "audit.jsonl"), { log, checkpointMs: 20 });
  try {
    audit.append(rec);
    fs.rmSync(dir, { recursive: true, force: true });
    await until(() => (errors.length ? true : undefined), 10_000, "the failed checkpoint to be logged");
    expect(errors[0]).toBe("audit checkpoint failed");
  } finally {
    fs.mkdirSync(dir, { recursive: true }); // so close()'s own checkpoint has somewhere to go
    audit.close();
  }
});
