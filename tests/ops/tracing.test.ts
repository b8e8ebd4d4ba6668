/**
 * Tracing on the compiled binary: a caller's W3C traceparent is continued (ours
 * answered with the same trace id and our span id), a malformed one starts a
 * new trace, the trace id is in the request's log line and audit record, and
 * with tracing.otlpEndpoint set the spans (request, guards, prompt guard, queue
 * wait, prompt eval, generation) reach a local OTLP/HTTP collector. With it unset
 * nothing is exported, even with the standard OTEL_* variables pointing at one.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { parseConfig } from "../../src/config/load";
import { otlpAllow, probeTarget } from "../../src/integrity/egress";
import { layout } from "../../src/service/layout";
import { renderUnits } from "../../src/service/units";
import { tmpDir, until } from "../helpers";

interface Span { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes: { key: string }[]; status: { code: number } }

const received: { path: string; body: string }[] = [];
let collector: ReturnType<typeof Bun.serve>;
let srv: BinaryServer;

beforeAll(async () => {
  collector = Bun.serve({ port: 0, hostname: "127.0.0.1", async fetch(req) {
    received.push({ path: new URL(req.url).pathname, body: await req.text() });
    return Response.json({});
  } });
  const cfg = path.join(tmpDir("appliance-trace-"), "config.json");
  fs.writeFileSync(cfg, JSON.stringify({ tracing: { otlpEndpoint: `http://127.0.0.1:${collector.port}` } }));
  srv = await startBinary(["--config", cfg]);
}, 120_000);
afterAll(async () => { await srv?.stop(); collector?.stop(true); });

const hex = (n: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(n))).toString("hex");
const PROMPT = "tell me about the purple walrus";
const chat = (base: string, key: string, headers: Record<string, string>, stream = false) => fetch(`${base}/v1/chat/completions`, {
  method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
  body: JSON.stringify({ model: "tiny", max_tokens: 5, stream, messages: [{ role: "user", content: PROMPT }] }),
});

const spansOf = (traceId: string): Span[] => received.flatMap((r) => {
  const j = JSON.parse(r.body) as { resourceSpans: { scopeSpans: { spans: Span[] }[] }[] };
  return j.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
}).filter((s) => s.traceId === traceId);


test("a caller's traceparent is continued: header, log line, audit record and exported spans", async () => {
  const traceId = hex(16), parent = hex(8);
  const r = await chat(srv.baseURL, srv.key, { traceparent: `00-${traceId}-${parent}-01` });
  expect(r.status).toBe(200);
  await r.json();
  const answered = r.headers.get("traceparent")!;
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(answered)!;
  expect(m[1]).toBe(traceId);
  const ourSpan = m[2]!;
  expect(ourSpan).not.toBe(parent);
  const reqId = r.headers.get("x-request-id")!;

  const line = await until(() => srv.log().split("\n").find((l) => l.includes(reqId) && l.includes('"msg":"request"')), 30_000, "the request log line");
  expect(JSON.parse(line).traceId).toBe(traceId);
  const audit = path.join(srv.stateDir, "audit.jsonl");
  const rec = await until(() => fs.existsSync(audit) ? fs.readFileSync(audit, "utf8").split("\n").find((l) => l.includes(reqId)) : undefined, 30_000, "the audit record");
  expect(JSON.parse(rec).traceId).toBe(traceId);

  const want = ["guards", "guard.prompt", "queue.wait", "prompt.eval", "generation"];
  const spans = await until(() => {
    const s = spansOf(traceId);
    return want.every((n) => s.some((x) => x.name === n)) ? s : undefined;
  }, 30_000, "the spans at the collector");
  expect(received.every((x) => x.path === "/v1/traces")).toBe(true);
  const root = spans.find((s) => s.spanId === ourSpan)!;
  expect(root.name).toBe("POST /v1/chat/completions");
  expect(root.parentSpanId).toBe(parent);
  expect(root.kind).toBe(2);
  expect(root.attributes.map((a) => a.key)).toContain("gen_ai.usage.output_tokens");
  for (const n of want) expect(spans.find((s) => s.name === n)!.parentSpanId).toBe(ourSpan);
  // OpenTelemetry's HTTP conventions: a server span is ERROR for 5xx, otherwise left UNSET (instrumentation does not
  // set OK); a 4xx is the client's fault, not the server's (operations run: they were OK).
  expect(root.status).toEqual({ code: 0 });
  const bad = await fetch(`${srv.baseURL}/v1/models`, { headers: { authorization: "Bearer apk_nope", traceparent: `00-${hex(16)}-${hex(8)}-01` } });
  expect(bad.status).toBe(401);
  const badTrace = bad.headers.get("traceparent")!.slice(3, 35);
  const badRoot = await until(() => spansOf(badTrace).find((x) => x.name === "GET /v1/models"), 30_000, "the 401's span");
  expect(badRoot.status).toEqual({ code: 0 });
  expect(received.map((x) => x.body).join("")).not.toContain("purple walrus"); // spans carry no prompt text
}, 60_000);

test("a malformed traceparent starts a new trace; streams answer one too", async () => {
  const given = hex(16);
  for (const bad of [`00-${given.toUpperCase()}-${hex(8)}-01`, `00-${"0".repeat(32)}-${hex(8)}-01`, `00-${given}-${"0".repeat(16)}-01`,
    `ff-${given}-${hex(8)}-01`, `00-${given}-${hex(8)}-01-extra`, "garbage"]) {
    const r = await fetch(`${srv.baseURL}/v1/models`, { headers: { authorization: `Bearer ${srv.key}`, traceparent: bad } });
    expect(r.status).toBe(200);
    const tp = r.headers.get("traceparent")!;
    expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(tp.slice(3, 35)).not.toBe(given);
  }
  // A later version may add fields: its first four are still read.
  const future = await fetch(`${srv.baseURL}/v1/models`, { headers: { authorization: `Bearer ${srv.key}`, traceparent: `01-${given}-${hex(8)}-01-more` } });
  expect(future.headers.get("traceparent")!.slice(3, 35)).toBe(given);

  const s = await chat(srv.baseURL, srv.key, {}, true);
  expect(s.status).toBe(200);
  await s.text();
  const tid = s.headers.get("traceparent")!.slice(3, 35);
  await until(() => spansOf(tid).some((x) => x.name === "generation") || undefined, 30_000, "the streamed request's spans");
  const refused = await fetch(`${srv.baseURL}/v1/models`); // errors answer it too
  expect(refused.status).toBe(401);
  expect(refused.headers.get("traceparent")).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
}, 60_000);

test("no export without tracing.otlpEndpoint, even with OTEL_* variables set", async () => {
  const url = `http://127.0.0.1:${collector.port}`;
  const quiet = await startBinary([], [], { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${url}/v1/traces`, OTEL_TRACES_EXPORTER: "otlp" });
  const traceId = hex(16);
  const r = await chat(quiet.baseURL, quiet.key, { traceparent: `00-${traceId}-${hex(8)}-01` });
  expect(r.status).toBe(200);
  expect(r.headers.get("traceparent")!.slice(3, 35)).toBe(traceId);
  await r.text();
  // A server with an exporter flushes it while shutting down, so after exit anything it would send has arrived.
  expect(await quiet.stop()).toBe(0);
  expect(spansOf(traceId)).toEqual([]);
}, 120_000);

test("the installed unit's egress lock lets through exactly the configured collector; a host name is refused", () => {
  const unit = (tracing: object) => Object.entries(renderUnits(layout("systemd", "/"), parseConfig({ tracing })))
    .find(([f]) => f.endsWith("appliance.service"))![1];
  expect(unit({})).toContain("\nIPAddressAllow=localhost\n");
  expect(unit({ otlpEndpoint: "http://10.0.0.9:4318" })).toContain("\nIPAddressAllow=localhost 10.0.0.9\n");
  expect(unit({ otlpEndpoint: "http://[fd00::9]:4318/v1/traces" })).toContain("\nIPAddressAllow=localhost fd00::9\n");
  expect(unit({ otlpEndpoint: "http://127.0.0.1:4318" })).toContain("\nIPAddressAllow=localhost 127.0.0.1\n");
  expect(() => parseConfig({ tracing: { otlpEndpoint: "http://collector.example:4318" } })).toThrow(/IP address or localhost/);
});

test("the service's egress probe never aims at the collector's address (it is allowed, so the probe would pass)", () => {
  const own = ["127.0.0.1", "10.0.0.9", "10.0.0.10"];
  expect(probeTarget([], own).host).toBe("10.0.0.9");
  expect(probeTarget(otlpAllow(parseConfig({ tracing: { otlpEndpoint: "http://10.0.0.9:4318" } })), own).host).toBe("10.0.0.10");
});

// An operator run: `config print` masked the collector's password, and the failed-export log line wrote it out.
test("a failed export's log line names the collector without its credentials", async () => {
  const failing = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("down", { status: 503 }) });
  const port = failing.port;
  const cfg = path.join(tmpDir("appliance-trace-secret-"), "config.json");
  fs.writeFileSync(cfg, JSON.stringify({ tracing: { otlpEndpoint: `http://collector:s3cret-pw@127.0.0.1:${port}` } }));
  const s = await startBinary(["--config", cfg]);
  try {
    const r = await chat(s.baseURL, s.key, { traceparent: `00-${hex(16)}-${hex(8)}-01` });
    expect(r.status).toBe(200);
    await r.text();
    await until(() => s.log().includes("trace export failed") || undefined); // the exporter sends every few seconds
  } finally {
    expect(await s.stop()).toBe(0);
    failing.stop(true);
  }
  const line = s.log().split("\n").find((l) => l.includes("trace export failed"));
  expect(line).toContain(`"url":"http://collector:[redacted]@127.0.0.1:${port}/v1/traces"`);
  expect(s.log()).not.toContain("s3cret");
}, 120_000);
