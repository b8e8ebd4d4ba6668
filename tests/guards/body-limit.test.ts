/**
 * A body declared larger than 2 × maxBodyBytes + 64 KiB got Bun's own 413 with no body (the listen options' body
 * limit: Bun answers before any handler runs), so the openai SDK showed "413 status code (no body)"; below that, our
 * JSON error, but only after the whole body was buffered. Now Bun sets no limit of its own: a declared Content-Length
 * over maxBodyBytes is refused before the body is read, and a streamed (chunked) body is counted as it arrives and
 * refused as soon as it passes maxBodyBytes — both with the OpenAI-shaped JSON 413 `body_too_large`, the connection
 * closed (the rest of the body is never read). Over raw sockets against a server listening with serve's options.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { listenOptions } from "../../src/server/listen";
import { makeApp, makeEngine } from "../helpers";

const MAX = 4096;
const engine = await makeEngine();
let ctx: Awaited<ReturnType<typeof makeApp>>;
let port: number;
beforeAll(async () => {
  ctx = await makeApp({ engine, config: { maxBodyBytes: MAX, rateLimit: { rpm: 0, tpm: 0 } } });
  ctx.app.listen(listenOptions({ host: "127.0.0.1", port: 0 }, undefined, ctx.config.limits.idleTimeoutSeconds)); // as serve listens
  port = ctx.app.server!.port!;
});
afterAll(async () => { await ctx.app.stop(true); await engine.dispose(); });

/** Sends `head`, then calls `more` (which may keep writing); resolves with the reply once the server closes. */
function exchange(head: string, more?: (s: net.Socket) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = "";
    const sock = net.connect(port, "127.0.0.1", () => { sock.write(head); more?.(sock); });
    sock.on("data", (d: Buffer) => { reply += d.toString(); });
    sock.on("close", () => resolve(reply));
    sock.on("error", (e) => { if (!reply) reject(e); }); // a reset after the answer (the unread rest) is fine
  });
}
const head = (framing: string, key = ctx.key) => `POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${key}\r\n` +
  `Content-Type: application/json\r\n${framing}\r\n\r\n`;
const chunk = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n`;

function expectJson413(reply: string) {
  const [status, ...rest] = reply.split("\r\n");
  expect(status).toBe("HTTP/1.1 413 Payload Too Large");
  const headers = rest.slice(0, rest.indexOf("")).map((h) => h.toLowerCase());
  expect(headers).toContain("connection: close");
  expect(headers.some((h) => h.startsWith("content-type: application/json"))).toBe(true);
  const body = JSON.parse(reply.slice(reply.indexOf("\r\n\r\n") + 4));
  expect(body).toEqual({ error: { message: `Request body is larger than ${MAX} bytes.`, type: "invalid_request_error", param: null, code: "body_too_large" } });
}

test("a Content-Length far above the limit (and above Bun's old 2 × max + 64 KiB) gets our JSON 413 before any body is sent", async () => {
  expectJson413(await exchange(head(`Content-Length: ${1e12}`)));
  expectJson413(await exchange(head(`Content-Length: ${MAX * 2 + 65_537}`), (s) => s.write("{")));
});

test("a declared length just over the limit, and one from a client without a key, get it too", async () => {
  expectJson413(await exchange(head(`Content-Length: ${MAX + 1}`), (s) => s.write("x".repeat(MAX + 1))));
  expectJson413(await exchange(head(`Content-Length: ${1e9}`, "apk_nope")));
});

test("a chunked body is refused once it passes the limit, while the client is still sending (never buffered whole)", async () => {
  let sent = 0;
  const reply = await exchange(head("Transfer-Encoding: chunked"), (s) => {
    // Keeps sending 1 KiB chunks until the server answers and closes: the answer cannot wait for the body's end.
    const pump = () => { while (!s.destroyed && sent < 1 << 30) { sent += 1024; if (!s.write(chunk("x".repeat(1024)))) { s.once("drain", pump); return; } } };
    pump();
  });
  expectJson413(reply);
  expect(sent).toBeLessThan(1 << 30);
});

test("a chunked body within the limit is read whole and answered", async () => {
  const body = JSON.stringify({ model: "tiny", input: "hello" });
  const reply = await exchange(head("Transfer-Encoding: chunked\r\nConnection: close"), (s) => s.write(chunk(body.slice(0, 10)) + chunk(body.slice(10)) + "0\r\n\r\n"));
  expect(reply.split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
  expect(reply).toContain('"object":"list"');
});

test("a body nobody reads (an unknown route, a GET, a refused key) is not drained forever: the answer closes the connection", async () => {
  // Without Bun's own limit, an endless chunked body sent where no handler reads it was drained for as long as the
  // client kept sending (gigabytes on one kept-alive connection) after the answer.
  const endless = (s: net.Socket) => {
    let sent = 0;
    const pump = () => { while (!s.destroyed && sent < 1 << 30) { sent += 1024; if (!s.write(chunk("x".repeat(1024)))) { s.once("drain", pump); return; } } };
    pump();
  };
  const statusOf = (reply: string) => reply.split("\r\n")[0];
  const cases = [
    [`POST /v1/nope HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${ctx.key}\r\nTransfer-Encoding: chunked\r\n\r\n`, "HTTP/1.1 404 Not Found"],
    ["GET /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 200 OK"],
    [head("Transfer-Encoding: chunked", "apk_nope"), "HTTP/1.1 401 Unauthorized"],
  ] as const;
  for (const [request, status] of cases) {
    const reply = await exchange(request, endless);
    expect(statusOf(reply)).toBe(status);
    expect(reply.toLowerCase()).toContain("connection: close");
  }
});

// A gzip body (some HTTP clients compress uploads) was a 400 invalid_json that did not say why; it is never inflated
// (a small body inflates past any limit).
test("a compressed body: 415 unsupported_content_encoding naming the coding, before it is read; identity is the plain body", async () => {
  const json = JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
  const gz = Bun.gzipSync(new TextEncoder().encode(json));
  const post = (encoding: string, body: Uint8Array | string) => fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST", body, headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json", "content-encoding": encoding } });
  const r = await post("gzip", gz);
  expect(r.status).toBe(415);
  const err = ((await r.json()) as { error: { code: string; message: string } }).error;
  expect(err.code).toBe("unsupported_content_encoding");
  expect(err.message).toContain("'gzip' is not supported");
  expect((await post("Identity", json)).status).toBe(200);
});
