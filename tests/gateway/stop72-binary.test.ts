/**
 * Stop 72's gateway fixes through the compiled binary as a user runs it (`appliance serve --config` with
 * `upstreams`), over a fake upstream: each was tested in-process only. Each fails on 26c5ce2's binary
 * (`APPLIANCE_BINARY=<that binary> bun test tests/gateway/stop72-binary.test.ts`).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startGatewayBinary, type GatewayBinary } from "./gateway-binary";
import { recordingUpstream } from "./gateway-helpers";

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
};

let up: ReturnType<typeof recordingUpstream>;
let gw: GatewayBinary;
let closedPort: number;
beforeAll(async () => {
  up = recordingUpstream(async (_req, seen) => seen.method === "GET"
    ? Response.json({ object: "list", data: Object.keys(answers).map((id) => ({ id, object: "model", created: 1, owned_by: "x" })) })
    : answers[(JSON.parse(seen.body) as { model: string }).model]!());
  const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  closedPort = closed.port!;
  await closed.stop(true);
  gw = await startGatewayBinary({ upstreams: [
    { url: up.url, apiKey: "upstream-key", models: Object.keys(answers) },
    { url: `http://127.0.0.1:${closedPort}/v1`, apiKey: "upstream-key", models: ["down"] },
  ], gateway: { healthIntervalMs: 0, retries: 0 } }); // no health probe: the request itself meets the refused connect
}, 120_000);
afterAll(async () => {
  expect(await gw?.stop()).toBe(0);
  await up?.stop();
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
