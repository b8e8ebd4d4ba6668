/**
 * gateway.connectTimeoutMs: an upstream whose SYNs are dropped holds a fetch for as long as its signal allows
 * (Bun's fetch has no connect timeout), so without a connect phase of its own the attempt would wait for
 * firstByteTimeoutMs. The dropping upstream here is a real listening socket with a full accept backlog that
 * never accepts (python3: listen(0), one connection queued; Linux then drops further SYNs).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import OpenAI from "openai";
import { recordingUpstream, startGateway } from "./gateway-helpers";

const stops: (() => unknown)[] = [];
afterAll(async () => { for (const s of stops.reverse()) await s(); });

/** Opens a TCP connection; "open", or "none" when it has not connected within `ms`. */
const dial = (port: number, ms: number) => new Promise<"open" | "none">((resolve) => {
  const s = net.connect({ host: "127.0.0.1", port });
  stops.push(() => s.destroy());
  const t = setTimeout(() => resolve("none"), ms);
  s.once("connect", () => { clearTimeout(t); resolve("open"); });
  s.once("error", () => { clearTimeout(t); resolve("none"); });
});

let dropPort = 0;
beforeAll(async () => {
  const py = Bun.spawn(["python3", "-c", "import socket,sys\ns=socket.socket();s.bind(('127.0.0.1',0));s.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()"],
    { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  stops.push(() => { py.kill(); return py.exited; });
  const first = await py.stdout.getReader().read();
  dropPort = Number(new TextDecoder().decode(first.value).trim());
  expect(dropPort).toBeGreaterThan(0);
  expect(await dial(dropPort, 10_000)).toBe("open"); // takes the one place in the accept queue
  expect(await dial(dropPort, 1_000)).toBe("none"); // from here on SYNs are dropped (else this test would prove nothing)
});

const gatewayConfig = (urls: string[]) => ({
  upstreams: urls.map((url) => ({ url, models: ["m"] })),
  gateway: { connectTimeoutMs: 300, firstByteTimeoutMs: 60_000, retries: 1, backoffMs: 0, breakerFailures: 1, healthIntervalMs: 0 },
});

test("the attempt on an upstream that never completes the connect gives up after connectTimeoutMs and fails over", async () => {
  const good = recordingUpstream();
  stops.push(() => good.stop());
  const gw = await startGateway(gatewayConfig([`http://127.0.0.1:${dropPort}/v1`, good.url]) as never);
  stops.push(() => gw.close());
  const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
  const t0 = performance.now();
  const r = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] });
  const ms = performance.now() - t0;
  expect(r.choices[0]!.message.content).toBe("hello");
  const [dropping, answering] = gw.gateway.pool.all;
  expect(dropping!.breaker.state).toBe("open"); // it was tried first (least in flight, first in the list) and failed
  expect(answering!.breaker.state).toBe("closed");
  expect(good.seen.filter((s) => s.path === "/v1/chat/completions")).toHaveLength(1);
  expect(ms).toBeLessThan(30_000); // well before firstByteTimeoutMs (60 s), which bounded it before
});

/** A chat through a gateway over the one upstream at `port`, no retries: its status and error. */
async function onlyUpstream(port: number) {
  const gw = await startGateway({ ...gatewayConfig([`http://127.0.0.1:${port}/v1`]), gateway: { ...gatewayConfig([]).gateway, retries: 0 } } as never);
  stops.push(() => gw.close());
  const res = await fetch(`${gw.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
  });
  return { status: res.status, error: ((await res.json()) as { error: { code: string; message: string } }).error };
}

test("only the dropping upstream: 503 upstream_unavailable naming the connect timeout", async () => {
  const { status, error } = await onlyUpstream(dropPort);
  expect(status).toBe(503);
  expect(error.code).toBe("upstream_unavailable");
  expect(error.message).toContain("no connection within 300 ms");
});

// Red-team run (stop 72): a refused connect put Node's message, "connect ECONNREFUSED 127.0.0.1:<port>", into the 503.
test("an upstream that refuses the connect: 503 naming the refusal, never the upstream's address", async () => {
  const closed = await new Promise<number>((resolve) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); }); });
  const { status, error } = await onlyUpstream(closed);
  expect(status).toBe(503);
  expect(error.message).toContain("ECONNREFUSED");
  expect(error.message).not.toContain("127.0.0.1");
  expect(error.message).not.toContain(String(closed));
});
