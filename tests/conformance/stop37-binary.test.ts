/**
 * This stop's fixes the way a user meets them: the compiled binary, through the official `openai` SDK, plain HTTP,
 * raw sockets and the CLI. The in-process tests beside the code hold the sweeps (server/parameters, guards/auth,
 * guards/limits-cancel, guards/client-address, ops/containment, ops/metrics-registry).
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import OpenAI from "openai";
import { until } from "../helpers";
import { sdkBinary, startBinary } from "./binary-server";

// keys[0]: a metrics key; keys[1]: a token budget to watch.
const srv = sdkBinary([], [["--scopes", "metrics"], ["--scopes", "chat,models", "--tpm", "3000"]]);

const error = (p: Promise<unknown>) => p.then(() => { throw new Error("expected an error"); }, (e) => e as InstanceType<typeof OpenAI.APIError>);
const cli = (args: string[]) => Bun.spawnSync([path.join(path.dirname(srv.server.stateDir), "appliance"), ...args, "--state-dir", srv.server.stateDir], { env: { PATH: "/usr/bin:/bin", HOME: path.dirname(srv.server.stateDir) } });
const port = () => Number(new URL(srv.server.baseURL).port);
/** GET over a raw socket from a chosen loopback address (fetch cannot pick its source address). */
const rawGet = (from: string, p: string, key: string, extra = "") => new Promise<number>((resolve, reject) => {
  const s = net.connect({ host: "127.0.0.1", port: port(), localAddress: from },
    () => s.end(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n${extra}Connection: close\r\n\r\n`));
  let got = "";
  s.on("data", (d) => { got += d; }).on("end", () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1]))).on("error", reject);
});

describe("errors as OpenAI writes them", () => {
  test("the param in brackets, pinpointed in the branch meant; the code for the kind of fault", async () => {
    const part = await error(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: [{ type: "text", text: 5 as never }] }] }));
    expect([part.status, part.param, part.code]).toEqual([400, "messages[0].content[0].text", "invalid_type"]);
    const temp = await error(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], temperature: 3 }));
    expect([temp.param, temp.code]).toEqual(["temperature", "decimal_above_max_value"]);
  });
});

test("/tokenize's chat form counts what a chat completion counts", async () => {
  const messages = [{ role: "system" as const, content: "Be brief." }, { role: "user" as const, content: "hello there" }];
  const r = await fetch(`${srv.server.baseURL}/tokenize`, { method: "POST", headers: { authorization: `Bearer ${srv.server.key}`, "content-type": "application/json" }, body: JSON.stringify({ messages }) });
  const chat = await srv.client.chat.completions.create({ model: "tiny", messages, max_tokens: 1 });
  expect(((await r.json()) as { count: number }).count).toBe(chat.usage!.prompt_tokens);
});

test("a stream cancelled after its first chunk is charged to its key", async () => {
  const key = srv.server.keys[1]!;
  const remaining = async () => {
    const r = await fetch(`${srv.server.baseURL}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    await r.arrayBuffer();
    return Number(r.headers.get("x-ratelimit-remaining-tokens"));
  };
  const before = await remaining();
  const ac = new AbortController();
  const r = await fetch(`${srv.server.baseURL}/v1/chat/completions`, { method: "POST", signal: ac.signal, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", stream: true, max_tokens: 200, messages: [{ role: "user", content: "hello world ".repeat(120) }] }) });
  await r.body!.getReader().read();
  ac.abort();
  // The bucket refills at 50 tokens/s: the prompt alone (~1,000 tokens) shows however late this looks.
  const left = await until(async () => { const n = await remaining(); return n < before - 200 ? n : undefined; }, 30_000, "the cancelled stream to be charged");
  expect(before - left).toBeGreaterThan(200);
});

test("lockdown: /health says so and the gauge reads 1; the scrape has no stub gauges", async () => {
  expect(cli(["lockdown", "--reason", "conformance"]).exitCode).toBe(0);
  try {
    expect(await (await fetch(`${srv.server.baseURL}/health`)).json()).toEqual({ status: "ok", lockdown: true });
    const text = await (await fetch(`${srv.server.baseURL}/metrics`, { headers: { authorization: `Bearer ${srv.server.keys[0]}` } })).text();
    expect(text).toMatch(/^appliance_lockdown 1$/m);
    expect(text).not.toContain("nodejs_active_");
  } finally { expect(cli(["lockdown", "--off"]).exitCode).toBe(0); }
});

test("bad keys from every other loopback address do not lock out a valid key (the last test: it leaves loopback throttled)", async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 55; i++) statuses.push(await rawGet(`127.0.${1 + (i % 50)}.${2 + i}`, "/v1/models", "apk_0000000000000000_bad"));
  expect(statuses.at(-1)).toBe(429); // loopback, one network, is over its failures
  expect(await rawGet("127.0.0.1", "/v1/models", srv.server.key)).toBe(200);
  expect(await rawGet("127.0.0.1", "/metrics", srv.server.keys[0]!)).toBe(200);
  expect(await rawGet("127.0.0.1", "/v1/models", "apk_0000000000000000_bad")).toBe(429);
});

test("trustedProxies: forwarded clients are counted and audited apart; the header is ignored from other peers", async () => {
  const lb = await startBinary(["--trusted-proxies", "127.0.0.1"], [], { APPLIANCE_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE: "2", APPLIANCE_RATE_LIMIT__AUTH_FAILURE_NETWORK_FACTOR: "1" });
  try {
    const get = (client: string) => fetch(`${lb.baseURL}/v1/models`, { headers: { authorization: "Bearer apk_nope", "x-forwarded-for": client } }).then((r) => r.status);
    expect([await get("198.51.100.7"), await get("198.51.100.7"), await get("198.51.100.7"), await get("203.0.113.9")]).toEqual([401, 401, 429, 401]);
    const audit = path.join(lb.stateDir, "audit.jsonl");
    const clients = await until(() => {
      const lines = fs.existsSync(audit) ? fs.readFileSync(audit, "utf8").trim().split("\n").filter(Boolean) : [];
      return lines.length >= 4 ? new Set(lines.map((l) => JSON.parse(l).client)) : undefined;
    }, 30_000, "the audit records");
    expect([...clients].sort()).toEqual(["198.51.100.7", "203.0.113.9"]);
  } finally { expect(await lb.stop()).toBe(0); }
}, 120_000);
