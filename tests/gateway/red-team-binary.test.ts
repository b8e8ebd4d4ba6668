/**
 * Stop 72's gateway fixes through the compiled binary as a user runs it (`appliance serve --config` with
 * `upstreams`), over a fake upstream: each was tested in-process only. Each fails on 26c5ce2's binary
 * (`APPLIANCE_BINARY=<that binary> bun test tests/gateway/stop72-binary.test.ts`). Then stop 73's gateway red-team
 * run's streamed findings, each failing on 5a554ec's binary.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { startGatewayBinary, type GatewayBinary } from "./gateway-binary";
import { chatChunk, recordingUpstream, sseChunks } from "./gateway-helpers";

const AWS = "AKIAIOSFODNN7EXAMPLE";
/** The upstream's answer by the model asked for. */
const answers: Record<string, () => Response> = {
  // A JSON answer that is not an object (26c5ce2's binary passed it on as a 200; in-process it was a 500).
  "list-answer": () => Response.json([1, 2]),
  // A Responses answer whose two output_text parts split a key (each half was scanned alone, with a separator).
  parts: () => Response.json({
    id: "resp_1", object: "response", created_at: 1, status: "completed", model: "parts",
    output: [{ type: "message", id: "msg_1", role: "assistant", status: "completed", content: [
      { type: "output_text", text: `the key is ${AWS.slice(0, 10)}`, annotations: [] },
      { type: "output_text", text: `${AWS.slice(10)} ok`, annotations: [] },
    ] }],
    usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
  }),
  // An error as the stream's first event, with an internal address and a key in its message (it reached the 502).
  "first-error": () => new Response(sseChunks([{ error: { message: `db at http://10.0.0.5:5432/ failed, key ${AWS}` } }]), { headers: SSE }),
  // A thought, one content delta, then the thought again: the second half went through a fresh filter.
  "resumed-thought": () => new Response(sseChunks([chatChunk({ role: "assistant", reasoning_content: `the key is ${AWS.slice(0, 8)}` }),
    chatChunk({ content: " " }), chatChunk({ reasoning_content: `${AWS.slice(8)} ok` }), chatChunk({}, "stop"), "[DONE]"]), { headers: SSE }),
};
const SSE = { "content-type": "text/event-stream" };

/**
 * An upstream that sends a stream's first event, then a chunk size that is not one (raw HTTP/1.1): Bun's fetch error
 * names the upstream's URL (`InvalidHTTPResponse fetching "http://…"`), and it reached the client's error.
 */
function breakingUpstream(): net.Server {
  const first = `data: ${JSON.stringify(chatChunk({ role: "assistant", content: "hi" }))}\n\n`;
  return net.createServer((sock) => {
    sock.once("data", () => sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" +
      `${Buffer.byteLength(first).toString(16)}\r\n${first}\r\nzz\r\nhello\r\n`));
    sock.on("error", () => {});
  });
}

let up: ReturnType<typeof recordingUpstream>;
let breaking: net.Server;
let gw: GatewayBinary;
let closedPort: number;
beforeAll(async () => {
  up = recordingUpstream(async (_req, seen) => seen.method === "GET"
    ? Response.json({ object: "list", data: Object.keys(answers).map((id) => ({ id, object: "model", created: 1, owned_by: "x" })) })
    : answers[(JSON.parse(seen.body) as { model: string }).model]!());
  breaking = breakingUpstream();
  await new Promise<void>((resolve) => breaking.listen(0, "127.0.0.1", resolve));
  const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  closedPort = closed.port!;
  await closed.stop(true);
  gw = await startGatewayBinary({ upstreams: [
    { url: up.url, apiKey: "upstream-key", models: Object.keys(answers) },
    { url: `http://127.0.0.1:${closedPort}/v1`, apiKey: "upstream-key", models: ["down"] },
    { url: `http://127.0.0.1:${(breaking.address() as net.AddressInfo).port}/v1`, apiKey: "upstream-key", models: ["broken"] },
  ], gateway: { healthIntervalMs: 0, retries: 0 } }); // no health probe: the request itself meets the refused connect
}, 120_000);
afterAll(async () => {
  expect(await gw?.stop()).toBe(0);
  await up?.stop();
  breaking?.close();
});

const post = (route: string, body: Record<string, unknown>) => fetch(`${gw.baseURL}/v1/${route}`, {
  method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" }, body: JSON.stringify(body),
});

test("an upstream JSON answer that is not an object is a 502, not passed on", async () => {
  const r = await post("chat/completions", { model: "list-answer", messages: [{ role: "user", content: "hi" }] });
  expect(r.status).toBe(502);
  expect(((await r.json()) as { error: { type: string } }).error.type).toBeString();
});

test("a key split over a Responses answer's output_text parts is redacted in the text a client joins", async () => {
  const r = await post("responses", { model: "parts", input: "hi" });
  expect(r.status).toBe(200);
  const body = (await r.json()) as { output: { content: { text: string }[] }[] };
  const joined = body.output.flatMap((o) => o.content.map((c) => c.text)).join("");
  expect(joined).not.toContain(AWS);
  expect(joined).not.toContain(AWS.slice(0, 10));
});

test("a refused connect's 503 does not tell the client the upstream's address", async () => {
  const r = await post("chat/completions", { model: "down", messages: [{ role: "user", content: "hi" }] });
  expect(r.status).toBe(503);
  const text = await r.text();
  expect(text).toContain("ECONNREFUSED");
  expect(text).not.toContain(String(closedPort));
  expect(text).not.toContain("127.0.0.1");
});

const streamed = async (model: string) => {
  const r = await post("chat/completions", { model, stream: true, messages: [{ role: "user", content: "hi" }] });
  return { status: r.status, text: await r.text() };
};

test("an upstream error as a stream's first event: a 502 without the upstream's words (internal address, key)", async () => {
  const r = await streamed("first-error");
  expect(r.status).toBe(502);
  expect(r.text).toContain("reported an error before its first token");
  for (const leak of ["10.0.0.5", AWS, AWS.slice(0, 10)]) expect(r.text).not.toContain(leak);
});

test("a thought that resumes after a content delta is dropped: no key split over two filters", async () => {
  const r = await streamed("resumed-thought");
  expect(r.status).toBe(200);
  const thought = r.text.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)) as { choices: { delta: { reasoning_content?: string } }[] })
    .map((c) => c.choices[0]?.delta.reasoning_content ?? "").join("");
  expect(thought).toStartWith("the key is ");
  expect(thought).not.toContain(AWS.slice(8));
});

test("an upstream whose answer is not valid HTTP: the 503 names the error's code, not the upstream's URL", async () => {
  // Sent in one write, so the gateway's first read of the body already fails: the attempt's error (the same code path
  // names a mid-stream break in the error event).
  const r = await streamed("broken");
  expect(r.status).toBe(503);
  expect(r.text).toContain("cannot reach it (InvalidHTTPResponse)");
  expect(r.text).not.toContain("127.0.0.1");
  expect(r.text).not.toContain(String((breaking.address() as net.AddressInfo).port));
});
