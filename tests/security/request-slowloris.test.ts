/**
 * Issue 9 item 4: an authenticated POST whose body never finished kept its
 * socket forever (the idle timeout was lifted before the body was read) and
 * counted against nothing. Over raw sockets against a listening server: a
 * trickled body holds one of the key's concurrency slots while it arrives, is
 * answered 408 at the body deadline and its socket closed; trickled headers are
 * cut off by the server too.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { KeyStore, keysFilePath } from "../../src/guards/keys";
import { AuditLog } from "../../src/log/audit";
import { silentLogger } from "../../src/log/logger";
import type { createApp } from "../../src/server/app";
import { createServer } from "../../src/server/create-server";
import { makeEngine, tinyModel, tmpDir } from "../helpers";

/** limits.bodyTimeoutMs, shorter than its default so the test is quick. */
const BODY_TIMEOUT_MS = 4_000;
let app: ReturnType<typeof createApp>;
let port: number;
let key: string;
const engine = await makeEngine();

beforeAll(async () => {
  const stateDir = tmpDir();
  const config = parseConfig({ stateDir, model: [await tinyModel()], rateLimit: { rpm: 0, tpm: 0 }, limits: { bodyTimeoutMs: BODY_TIMEOUT_MS } });
  const store = new KeyStore(keysFilePath(stateDir));
  key = store.create({ name: "slow", maxConcurrent: 2 }).key;
  const log = silentLogger();
  ({ app } = await createServer(config, { engine, keys: store, audit: new AuditLog(path.join(stateDir, "audit.jsonl")), log }));
  app.listen({ hostname: "127.0.0.1", port: 0, idleTimeout: 30 });
  port = app.server!.port!;
});
afterAll(async () => { await app.stop(true); await engine.dispose(); });

/** Writes `head`, then one byte of `drip` every 200 ms; resolves with what came back once the server closes. */
function trickle(head: string, drip: string, limitMs = 90_000): Promise<{ closedByServer: boolean; reply: string }> {
  return new Promise((resolve) => {
    let reply = "", timer: ReturnType<typeof setInterval> | undefined;
    const sock = net.connect(port, "127.0.0.1", () => {
      sock.write(head);
      timer = setInterval(() => { if (!sock.destroyed) sock.write(drip); }, 200);
    });
    const give = setTimeout(() => { clearInterval(timer); sock.destroy(); resolve({ closedByServer: false, reply }); }, limitMs);
    sock.on("data", (d: Buffer) => { reply += d.toString(); });
    sock.on("close", () => { clearInterval(timer); clearTimeout(give); resolve({ closedByServer: true, reply }); });
    sock.on("error", () => {});
  });
}

const slowPost = () => trickle(`POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${key}\r\n` +
  "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", " ");
const chat = () => fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: "POST",
  headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
  body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 1 }) });

test("trickled bodies hold the key's slots, then get 408 and a closed socket; the slots come back", async () => {
  const slow = [slowPost(), slowPost()];
  // Once the server holds both (headers in, body still arriving), a third request of the key is refused.
  const until = Date.now() + BODY_TIMEOUT_MS - 500;
  while (app.server!.pendingRequests < 2 && Date.now() < until) await Bun.sleep(5);
  const probe = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: "POST", body: "{}",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" } });
  expect(probe.status).toBe(429); // with a free slot it would be a 400 for the empty body
  for (const r of await Promise.all(slow)) {
    expect(r.closedByServer).toBe(true);
    expect(r.reply).toMatch(/^HTTP\/1\.1 408 /);
    const body = JSON.parse(r.reply.slice(r.reply.indexOf("\r\n\r\n") + 4)) as { error: { code: string; type: string } };
    expect(body.error).toMatchObject({ code: "body_timeout", type: "invalid_request_error" });
  }
  expect((await chat()).status).toBe(200);
});

test("trickled headers are cut off by the server", async () => {
  const r = await trickle("GET /health HTTP/1.1\r\nHost: localhost\r\n", "X-a: b\r\n");
  expect(r.closedByServer).toBe(true);
  expect(r.reply).not.toContain("200 OK");
});
