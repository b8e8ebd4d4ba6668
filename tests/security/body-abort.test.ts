/**
 * A client that goes away before its body is complete (red team, raw sockets against the binary): Bun rejects the
 * body read with an AbortError, which came out as a 400 invalid_json in the log and the audit record. It is a client
 * abort, recorded as 499 like an aborted stream; a body that is complete and not JSON is still invalid_json.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { listenApp, makeApp, memoryLogger } from "../helpers";

const mem = memoryLogger();
let port = 0, key = "", stop = async () => {};

beforeAll(async () => {
  const t = await makeApp({ log: mem.log, config: { rateLimit: { rpm: 0, tpm: 0 } } });
  port = Number(new URL(listenApp(t.app)).port);
  key = t.key;
  stop = async () => { await t.app.stop(true); await t.engine.dispose(); };
}, 120_000);
afterAll(() => stop());

/** Sends the head and `body`, then `end`s (half-close) or destroys the socket. */
function send(head: string, body: string, how: "end" | "destroy") {
  const sock = net.connect(port, "127.0.0.1", () => {
    sock.write(head + body);
    if (how === "end") sock.end(); else sock.destroy();
  });
  sock.on("error", () => {});
}

const head = (length: string) => `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${key}\r\n` +
  `Content-Type: application/json\r\n${length}\r\n`;
/** The next request line logged from now on (the tests run one at a time). */
const nextLogged = () => mem.line((l) => l.msg === "request", mem.lines.length) as Promise<{ status: number } & Record<string, unknown>>;

test.each([
  ["Content-Length longer than what is sent, then closed", "Content-Length: 1000\r\n", "destroy"],
  ["Content-Length longer than what is sent, then half-closed", "Content-Length: 1000\r\n", "end"],
  ["chunked with no last chunk, then closed", "Transfer-Encoding: chunked\r\n", "destroy"],
] as const)("%s: 499, not invalid_json", async (_, length, how) => {
  const partial = length.startsWith("Transfer") ? '10\r\n{"model":"tiny",\r\n' : '{"model":"tiny","messages":[';
  const line = nextLogged();
  send(head(length), partial, how);
  const l = await line;
  expect(l.status).toBe(499);
  expect(JSON.stringify(l)).not.toContain("invalid_json");
});

test("a complete body that is not JSON is still a 400 invalid_json", async () => {
  const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: '{"model":',
  });
  expect([r.status, ((await r.json()) as { error: { code: string } }).error.code]).toEqual([400, "invalid_json"]);
});
