/**
 * The red team's guard findings of the last stop, the way an attacker meets them: the compiled binary over real
 * HTTP. The in-process tests (tests/guards/refused-limits, auth, anonymous-limits) hold the wider cases; each case
 * here failed against a binary built before the fixes (3917e39): refused requests were never rate-limited, a
 * metrics key could tokenize, and the public docs had no per-address limit with auth on. The raw-socket body cases
 * failed against binaries built before their fixes: the declared one at 3917e39 (Bun's own bodiless 413), the endless
 * one at 1829646 (the unread body drained while the client kept sending).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { startBinary, type BinaryServer } from "./binary-server";

const PER_MINUTE = 4;
let server: BinaryServer;
beforeAll(async () => {
  server = await startBinary([], [["--scopes", "chat,models", "--rpm", String(PER_MINUTE)], ["--scope", "metrics", "--rpm", String(PER_MINUTE)]],
    { APPLIANCE_RATE_LIMIT__ANONYMOUS_RPM: String(PER_MINUTE) });
});
afterAll(async () => { expect(await server.stop()).toBe(0); });

/** Statuses of `n` requests sent one after another. */
async function statuses(n: number, path: string, init: RequestInit = {}): Promise<{ codes: number[]; limitHeaders: number }> {
  const codes: number[] = [];
  let limitHeaders = 0;
  for (let i = 0; i < n; i++) {
    const r = await fetch(server.baseURL + path, init);
    await r.arrayBuffer();
    codes.push(r.status);
    if (r.headers.get("x-ratelimit-remaining-requests") !== null) limitHeaders++;
  }
  return { codes, limitHeaders };
}

/** The key's budget is taken by the first PER_MINUTE; the rest are 429 (a minute's refill cannot come within the run). */
const spent = (codes: number[], first: number) => {
  expect(codes.slice(0, PER_MINUTE)).toEqual(Array(PER_MINUTE).fill(first));
  expect(codes.slice(PER_MINUTE)).toEqual(Array(codes.length - PER_MINUTE).fill(429));
};

test("a valid key's requests to unknown routes count against its rate limit, with its headers on every answer", async () => {
  const { codes, limitHeaders } = await statuses(PER_MINUTE + 3, "/v1/nope", { headers: { authorization: `Bearer ${server.keys[0]}` } });
  spent(codes, 404);
  expect(limitHeaders).toBe(codes.length);
});

test("a metrics key cannot tokenize (403), and its refused requests count against its rate limit", async () => {
  const { codes } = await statuses(PER_MINUTE + 2, "/tokenize", {
    method: "POST", headers: { authorization: `Bearer ${server.keys[1]}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", content: "hello" }),
  });
  spent(codes, 403);
});

test("with auth on, the public docs are limited per address without a key; GET /health never is", async () => {
  const { codes } = await statuses(PER_MINUTE + 2, "/swagger/json");
  spent(codes, 200);
  const health = await statuses(PER_MINUTE * 3, "/health");
  expect(health.codes).toEqual(Array(PER_MINUTE * 3).fill(200));
});

/**
 * Sends `head`, then keeps sending 1 KiB chunks (chunked) if `endless`, up to 1 GiB; resolves once the server closes,
 * with its reply and how much was sent.
 */
function exchange(head: string, endless = false): Promise<{ reply: string; sent: number }> {
  const port = Number(new URL(server.baseURL).port);
  return new Promise((resolve) => {
    let reply = "", sent = 0;
    const sock = net.connect(port, "127.0.0.1", () => {
      sock.write(head);
      const pump = () => {
        try {
          while (endless && !sock.destroyed && sent < 1 << 30) { sent += 1024; if (!sock.write(`400\r\n${"x".repeat(1024)}\r\n`)) { sock.once("drain", pump); return; } }
        } catch { /* the server closed while we were still sending: what it answered is read on close */ }
      };
      pump();
    });
    sock.on("data", (d: Buffer) => { reply += d.toString(); });
    sock.on("close", () => resolve({ reply, sent }));
    sock.on("error", () => {}); // a reset or broken pipe once the server closed on the unread rest; "close" follows
  });
}

test("a body declared far over the limit gets the JSON 413 body_too_large (not Bun's bodiless one), and the connection closes", async () => {
  const { reply } = await exchange(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${server.key}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${1e12}\r\n\r\n`);
  expect(reply.split("\r\n")[0]).toBe("HTTP/1.1 413 Payload Too Large");
  expect(reply.toLowerCase()).toContain("connection: close");
  expect(JSON.parse(reply.slice(reply.indexOf("\r\n\r\n") + 4)).error.code).toBe("body_too_large");
});

test("an endless body sent to a route that does not read it: the connection is closed, not drained while the client sends", async () => {
  // The 404 itself may not reach this client: closing on unread bytes resets the connection (a client that has sent
  // its whole body, even 900 KB, reads its 404). Before (1829646): the server drained the body for as long as it came.
  const { sent } = await exchange(`POST /v1/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${server.key}\r\nTransfer-Encoding: chunked\r\n\r\n`, true);
  expect(sent).toBeLessThan(64 << 20);
});
