/**
 * The docs page of a gateway that serves upstream models only, through the compiled binary. Scale-out run: the
 * spec's examples said "your-model", and building the /detokenize example tokenized that name, which threw: a
 * multi-line stack trace on stdout (breaking the JSON log lines) at the first GET /swagger/json, public by default.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { recordingUpstream } from "./gateway-helpers";
import { startGatewayBinary, type GatewayBinary } from "./gateway-binary";

let up: ReturnType<typeof recordingUpstream>;
let gw: GatewayBinary;
beforeAll(async () => {
  up = recordingUpstream();
  gw = await startGatewayBinary({ upstreams: [{ url: up.url, models: ["remote-model"] }] });
}, 60_000);
afterAll(async () => {
  expect(await gw?.stop()).toBe(0);
  up?.stop();
});

test("the public spec's examples name no model (not the upstream's either); building it logs nothing but JSON lines", async () => {
  const r = await fetch(`${gw.baseURL}/swagger/json`);
  expect(r.status).toBe(200);
  const spec = await r.text();
  expect(spec).toContain('"model":"your-model"');
  expect(spec).not.toContain("remote-model");
  const detok = (JSON.parse(spec) as { paths: Record<string, { post?: { requestBody?: unknown } }> }).paths["/detokenize"]?.post?.requestBody;
  expect(detok).toBeDefined();
  expect((await fetch(`${gw.baseURL}/health`)).status).toBe(200); // a later request: its log line follows any the spec caused
  const lines = gw.log().split("\n").filter(Boolean);
  expect(lines.filter((l) => !l.startsWith("{"))).toEqual([]);
});
