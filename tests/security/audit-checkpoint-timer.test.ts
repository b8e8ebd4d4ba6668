/**
 * The audit log writes a checkpoint on a timer. A timed checkpoint that cannot be written (its directory removed, a
 * full disk) must be logged, not thrown from the timer: an exception there ends the server process (seen in a CI run
 * as an uncaught ENOENT from a test app's timer after its temp dir was removed).
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { KeyStore, keysFilePath } from "../../src/guards/keys";
import { AuditLog, type AuditRecord } from "../../src/log/audit";
import { createLogger } from "../../src/log/logger";
import { createServer } from "../../src/server/create-server";
import { makeEngine, req, tinyModel, tmpDir, until } from "../helpers";

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

// Operations run: at logLevel warn (an operator lowering log noise) the checkpoints' log copy, the one the journal
// keeps out of the service account's reach, was dropped with the info lines; `audit verify --journal` then found none.
test("the checkpoints' log copy is written at any log level but silent; other info lines still follow the level", async () => {
  const lines: { msg: string; level: number }[] = [];
  const log = createLogger("warn", { write: (s: string) => { lines.push(JSON.parse(s)); return true; } } as never);
  const stateDir = tmpDir();
  const config = parseConfig({ stateDir, model: [await tinyModel()] } as Record<string, unknown>);
  const store = new KeyStore(keysFilePath(stateDir), Date.now);
  const { key } = store.create({ name: "a", scopes: ["models"] });
  const engine = await makeEngine();
  const { app, audit } = await createServer(config, { log, engine, keys: store });
  try {
    const r = await app.handle(req("/v1/models", { key }));
    expect(r.status).toBe(200);
    await r.text();
    const file = path.join(stateDir, "audit.jsonl");
    await until(() => (fs.statSync(file, { throwIfNoEntry: false })?.size ? true : undefined), 10_000, "the request's audit record");
  } finally {
    audit!.close(); // writes the checkpoint of that request's record
    await engine.dispose();
  }
  expect(lines.filter((l) => l.msg === "audit checkpoint")).toHaveLength(1);
  expect(lines.filter((l) => l.level < 40 && l.msg !== "audit checkpoint")).toEqual([]);
});
