/**
 * Issue 9 item 3: a malformed Host (or none) made `new URL(request.url)` throw
 * before any guard, and Bun answered with its development error page (100 KB of
 * HTML: cwd, stack frames, bundled source) and no audit record. Against the
 * compiled binary, over raw sockets: every answer is our JSON, the refusal is
 * logged as one JSON line and audited.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { jsonLines, rawHttp, serveBinary, type Served } from "./request-helpers";

let srv: Served;
beforeAll(async () => { srv = await serveBinary(); });
afterAll(async () => { await srv?.stop(); });

const HOSTS = ["Host: localhost:evil\r\n", "Host: localhost:80@evil.example\r\n", "Host: [::1]evil.example\r\n", "Host: \r\n", "Host: a/b\r\n"];
const CASES = [
  ...HOSTS.flatMap((h) => ["/health", "/v1/models"].map((p) => ({ name: `${JSON.stringify(h)} ${p}`, payload: `GET ${p} HTTP/1.1\r\n${h}Connection: close\r\n\r\n` }))),
  { name: "HTTP/1.0 without Host, /health", payload: "GET /health HTTP/1.0\r\n\r\n" },
  { name: "HTTP/1.0 without Host, POST", payload: "POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" },
];

test("malformed or missing Host: our JSON 421, request id only, logged as JSON and audited", async () => {
  for (const c of CASES) {
    const r = await rawHttp(srv.port, c.payload);
    expect({ case: c.name, status: r.status }).toEqual({ case: c.name, status: 421 });
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["x-request-id"]).toMatch(/^req_[\w-]{22}$/);
    expect(r.body).not.toContain(srv.dir);
    const e = (JSON.parse(r.body) as { error: Record<string, unknown> }).error;
    expect(e).toMatchObject({ type: "invalid_request_error", code: "host_not_allowed", param: null });
  }
  // One request line per case, all of stdout JSON (no HTML, no stack dump), and one audit record each.
  const deadline = Date.now() + 30_000;
  const refused = () => jsonLines(srv.log()).filter((l) => l.msg === "request" && l.status === 421);
  while (refused().length < CASES.length && Date.now() < deadline) await Bun.sleep(20);
  expect(refused().length).toBe(CASES.length);
  const audit = fs.readFileSync(path.join(srv.stateDir, "audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  expect(audit.filter((a) => a.status === 421).length).toBe(CASES.length);
});

test("a good Host still works over the same raw path", async () => {
  const r = await rawHttp(srv.port, "GET /health HTTP/1.1\r\nHost: localhost:8000\r\nConnection: close\r\n\r\n");
  expect(r.status).toBe(200);
  const v6 = await rawHttp(srv.port, "GET /health HTTP/1.1\r\nHost: [::1]:8000\r\nConnection: close\r\n\r\n");
  expect(v6.status).toBe(200);
});
