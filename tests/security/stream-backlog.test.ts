/**
 * A client that sends a streamed request and then never reads (red team): generation did not wait for it, so every
 * answer was generated whole and held in memory (two such sockets: 135 → 305 MB, held as long as they stayed open).
 * Past limits.streamBacklogBytes queued for it the generation is cancelled and the connection closed, over a raw
 * socket that pauses right after writing its request. A unix socket: its kernel buffer is ~200 KB, where a loopback TCP
 * connection's autotuned buffers take several MB first (the same limit, reached after seconds of generation instead).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import path from "node:path";
import { makeApp, memoryLogger, tmpDir } from "../helpers";

const mem = memoryLogger();
let ctx: Awaited<ReturnType<typeof makeApp>>;
const unix = path.join(tmpDir("appliance-backlog-"), "s.sock");
beforeAll(async () => {
  ctx = await makeApp({ log: mem.log, config: { ctxSize: 4096, limits: { streamBacklogBytes: 65_536 }, rateLimit: { rpm: 0, tpm: 0 } } });
  ctx.app.listen({ unix } as never);
});
afterAll(async () => { await ctx.app.stop(true); });

/** The tiny model's end tokens banned, top_logprobs 20: ~1 KB of events per token, far past the sockets' buffers. */
const body = (maxTokens: number) => JSON.stringify({ model: "tiny", stream: true, max_tokens: maxTokens, n: 8, temperature: 1, logprobs: true, top_logprobs: 20,
  logit_bias: { 2: -100, 260: -100 }, messages: [{ role: "user", content: "x" }] });

test("a reader that stops reading: the generation is cancelled (499) and the connection closed; the server serves on", async () => {
  const sock = net.connect({ path: unix });
  const closed = new Promise<void>((resolve) => sock.on("close", () => resolve()));
  sock.on("error", () => {});
  await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
  const b = body(2000);
  sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ctx.key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`);
  sock.pause(); // never reads: the kernel's buffers fill, then the server's queue
  const line = await mem.line((l) => l.msg === "request");
  expect(line.status).toBe(499);
  expect(line.completionTokens as number).toBeLessThan(8 * 2000);
  // Reading again, the client gets what was queued and then the end of the connection (a paused socket sees no FIN).
  sock.resume();
  await closed;
  // The sequence went back: the next request is answered.
  const r = await fetch("http://127.0.0.1/v1/chat/completions", { unix, method: "POST", headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", max_tokens: 4, messages: [{ role: "user", content: "hi" }] }) });
  expect(r.status).toBe(200);
}, 90_000);
