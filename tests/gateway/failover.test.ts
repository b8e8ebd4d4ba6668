/**
 * Failure handling against real upstreams: two appliance processes (the
 * compiled binary on the tiny model) serve "tiny" behind an in-process gateway
 * whose breaker clock the test moves. One is killed mid-stream (SIGKILL), later
 * started again on the same port; the client is the openai SDK.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import OpenAI from "openai";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { memoryLogger } from "../helpers";
import type { Upstream } from "../../src/gateway/upstream";
import { startGateway, type GatewayApp } from "./gateway-helpers";

const COOLDOWN = 60_000;
let servers: BinaryServer[] = [];
let gw: GatewayApp;
let client: OpenAI;
const { log, lines } = memoryLogger();

beforeAll(async () => {
  servers = await Promise.all([startBinary(), startBinary()]);
  gw = await startGateway({
    upstreams: servers.map((s) => ({ url: `${s.baseURL}/v1`, apiKey: s.key, models: ["tiny"] })),
    gateway: { breakerFailures: 1, breakerCooldownMs: COOLDOWN, retries: 1, backoffMs: 0, healthIntervalMs: 0 },
  }, log);
  client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
  for (const s of servers) await s.stop();
});

/** Polls `check` until it holds (generous deadline: a loaded CI machine), never sleeping a fixed time. */
async function until(what: string, check: () => boolean, ms = 30_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}
const upstreams = () => gw.gateway.pool.all;
const serverOf = (u: Upstream) => servers.find((s) => `${s.baseURL}/v1` === u.base)!;
/** The upstream that served a request, from its audit record (written just after the response, so polled for). */
async function served(reqId: string | null | undefined): Promise<string> {
  let rec: { reqId: string; decisions: string[] } | undefined;
  await until(`the audit record of ${reqId}`, () => {
    rec = fs.readFileSync(gw.auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l)).find((r) => r.reqId === reqId);
    return !!rec;
  });
  return rec!.decisions.find((d) => d.startsWith("upstream:"))!;
}
/** A stream long enough to outlive the test's actions (temperature 0 on this prompt runs to max_tokens). */
const longStream = (signal?: AbortSignal) =>
  client.completions.create({ model: "tiny", prompt: "long", max_tokens: 1900, temperature: 0, stream: true }, { signal });
const chat = () => client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
/** One chat; resolves with the upstream that served it. */
const chatVia = async () => served((await chat())._request_id);

describe("failover", () => {
  test("a client that disconnects aborts the upstream request (the upstream logs it cancelled)", async () => {
    const ac = new AbortController();
    const it = (await longStream(ac.signal))[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    const busy = upstreams().find((u) => u.inflight === 1)!;
    expect(busy).toBeDefined();
    ac.abort();
    const up = serverOf(busy);
    await until("the upstream to log the cancelled stream", () => /"route":"POST \/v1\/completions","status":499/.test(up.log()));
    await until("the gateway to release the upstream", () => busy.inflight === 0);
    expect(busy.breaker.state).toBe("closed"); // a client leaving is not the upstream's failure
  });

  test("an upstream killed mid-stream: the client's stream ends with an error, its breaker opens, the next request goes to the other", async () => {
    const stream = await longStream();
    const it = stream[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    const victim = upstreams().find((u) => u.inflight === 1)!;
    const other = upstreams().find((u) => u !== victim)!;
    serverOf(victim).kill("SIGKILL");
    const err = await (async () => { for (;;) if ((await it.next()).done) return "ended without an error"; })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(/upstream/i);
    expect(victim.breaker.state).toBe("open");
    expect(lines.some((l) => l.msg === "upstream stream broke" && l.upstream === victim.base)).toBe(true);

    for (let i = 0; i < 3; i++) expect(await chatVia()).toBe(`upstream:${other.base}`);
  });

  test("after the cool-down the half-open probe to a still-dead upstream fails over before the first byte and reopens it; once it is back, a probe closes it", async () => {
    const victim = upstreams().find((u) => u.breaker.state === "open")!;
    const other = upstreams().find((u) => u !== victim)!;
    gw.advance(COOLDOWN + 1);
    expect(victim.breaker.state).toBe("half-open");
    // Ties rotate, so within two requests the half-open one is picked as the probe; each still succeeds for the client.
    for (let i = 0; i < 2 && victim.breaker.state === "half-open"; i++) expect(await chatVia()).toBe(`upstream:${other.base}`);
    expect(victim.breaker.state).toBe("open");

    const port = new URL(victim.base).port;
    const restarted = await startBinary(["--port", port, "--no-auth"]); // a fresh state dir has a new key: this one takes any

    servers.push(restarted);
    gw.advance(COOLDOWN + 1);
    let last = "";
    for (let i = 0; i < 2 && victim.breaker.state === "half-open"; i++) last = await chatVia();
    expect(victim.breaker.state).toBe("closed");
    expect(last).toBe(`upstream:${victim.base}`);
  });

  test("every upstream down: 503 with Retry-After, decided before anything is sent once the breakers are open", async () => {
    for (const s of servers) s.kill("SIGKILL");
    const first = await chat().catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    expect(first).toBeInstanceOf(OpenAI.APIError);
    expect((first as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect(upstreams().every((u) => u.breaker.state === "open")).toBe(true);
    const res = await fetch(`${gw.baseURL}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true }),
    });
    expect(res.status).toBe(503);
    expect(Number(res.headers.get("retry-after"))).toBe(COOLDOWN / 1000);
    const body = await res.json() as { error: { code: string; type: string } };
    expect(body.error).toMatchObject({ code: "upstream_unavailable", type: "service_unavailable" });
  });
});
