/**
 * A POST lifts its connection's idle timeout while it runs (a generation may be silent for minutes), and the lift had
 * lasted for the connection's whole life: every kept-alive connection that had made one POST stayed open idle forever
 * (seen at 50 s with a 30 s timeout), so a key holder could pile up idle connections. Now each is closed
 * limits.idleTimeoutSeconds after its answer, streamed or not, like one that made only a GET. Raw sockets against a
 * server listening with serve's options; the test waits for each close.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { listenOptions } from "../../src/server/listen";
import { makeApp } from "../helpers";

let ctx: Awaited<ReturnType<typeof makeApp>>;
let port: number;
beforeAll(async () => {
  ctx = await makeApp({ config: { limits: { idleTimeoutSeconds: 1 }, rateLimit: { rpm: 0, tpm: 0 } } });
  ctx.app.listen(listenOptions({ host: "127.0.0.1", port: 0 }, undefined, ctx.config.limits.idleTimeoutSeconds));
  port = ctx.app.server!.port!;
});
afterAll(async () => { await ctx.app.stop(true); });

/** Sends one request on a kept-alive connection; resolves with what came back once the server closes it. */
function untilClosed(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = "";
    const sock = net.connect(port, "127.0.0.1", () => sock.write(request));
    sock.on("data", (d: Buffer) => { reply += d.toString(); });
    sock.on("close", () => resolve(reply));
    sock.on("error", reject);
  });
}
const post = (stream: boolean) => {
  const body = JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2, stream });
  return `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ctx.key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
};

test("after a POST's answer, whole or streamed, the kept-alive connection is closed once idle, as after a GET", async () => {
  const [get, whole, streamed, refused] = await Promise.all([
    untilClosed("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    untilClosed(post(false)),
    untilClosed(post(true)),
    untilClosed(post(false).replace('"model":"tiny"', '"model":"none"')), // an error answer (404)
  ]);
  expect(get).toStartWith("HTTP/1.1 200");
  expect(whole).toStartWith("HTTP/1.1 200");
  expect(streamed).toStartWith("HTTP/1.1 200");
  expect(streamed).toContain("data: [DONE]");
  expect(refused).toStartWith("HTTP/1.1 404");
}, 30_000);
