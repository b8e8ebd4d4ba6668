/**
 * Containment on the compiled binary and its running server: `lockdown` stops every route but
 * /health and /metrics from the next request on (no restart), `lockdown --off` lifts it; `keys revoke
 * --all` revokes every key in one locked write and the running server refuses them at once.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { lockdownFile } from "../../src/guards/lockdown";
import { main } from "../../src/main";
import { createServer } from "../../src/server/create-server";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { makeEngine, memoryLogger, req, tinyModel, tmpDir } from "../helpers";

let server: BinaryServer, bin: string;
const cli = (args: string[]) => {
  const r = Bun.spawnSync([bin, ...args, "--state-dir", server.stateDir], { stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin", HOME: path.dirname(server.stateDir) } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};
const get = (p: string, key = server.key) => fetch(`${server.baseURL}${p}`, { headers: { authorization: `Bearer ${key}` } });
const chat = (key = server.key) => fetch(`${server.baseURL}/v1/chat/completions`, {
  method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
  body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
});

beforeAll(async () => {
  server = await startBinary([], [["--scopes", "chat"]]);
  bin = path.join(path.dirname(server.stateDir), "appliance");
}, 120_000);
afterAll(async () => { expect(await server.stop()).toBe(0); });

test("lockdown: 503 'lockdown' for inference and every other route, /health stays; --off serves again", async () => {
  expect((await chat()).status).toBe(200);
  const on = cli(["lockdown", "--reason", "test incident"]);
  expect(on.code).toBe(0);
  expect(on.out).toContain("lockdown on");
  for (const r of [await chat(), await get("/v1/models"), await get("/v1/models", "apk_0000000000000000_x")]) {
    expect(r.status).toBe(503);
    const { error } = (await r.json()) as { error: { message: string } };
    expect(error).toMatchObject({ code: "lockdown", type: "service_unavailable" });
    expect(error.message).toEndWith("Only /health and /metrics answer."); // what stays up (below)
  }
  // Monitoring sees it (operations run: /health said only "ok" and no metric told): /health still 200, saying so.
  const health = await get("/health");
  expect([health.status, await health.json()]).toEqual([200, { status: "ok", lockdown: true }]);
  const metrics = await get("/metrics");
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toMatch(/^appliance_lockdown 1$/m);
  const off = cli(["lockdown", "--off"]);
  expect(off.code).toBe(0);
  expect(off.out).toContain("lockdown lifted");
  expect((await chat()).status).toBe(200);
  expect(await (await get("/health")).json()).toEqual({ status: "ok" });
  expect(await (await get("/metrics")).text()).toMatch(/^appliance_lockdown 0$/m);
  expect(cli(["lockdown", "--off"]).out).toContain("not in lockdown");
}, 120_000);

// Claims audit (stop 74): `lockdown` stopped new requests only; a stream already generating ran on to its max_tokens
// (~3 s here) and ended 200 with all of them. The server now looks for a lockdown while generations run and cuts
// them as a shutdown does: each answer ends properly with what it has, finish_reason "length".
test("lockdown cuts the generations already running: a stream ends cut short, not at its max_tokens", async () => {
  // Forced by the schema: uncut, the tiny model writes all of it (~1,600 tokens, ~3 s here) and ends with "stop".
  const long = "lorem ipsum dolor ".repeat(100);
  const res = await fetch(`${server.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 1900, stream: true,
      response_format: { type: "json_schema", json_schema: { name: "k", schema: { type: "object", properties: { k: { const: long } }, required: ["k"] } } } }),
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = dec.decode((await reader.read()).value);
  expect(text).toContain("data: ");
  try {
    expect(cli(["lockdown", "--reason", "cut the running ones"]).code).toBe(0);
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += dec.decode(r.value);
  } finally { cli(["lockdown", "--off"]); }
  const events = text.split("\n").filter((l) => l.startsWith("data: ") && l !== "data: [DONE]").map((l) => JSON.parse(l.slice(6)));
  expect(text.trimEnd()).toEndWith("data: [DONE]");
  expect(events.at(-1).choices[0].finish_reason).toBe("length");
  const content = events.map((e) => e.choices[0]?.delta?.content ?? "").join("");
  expect(content.length).toBeLessThan(long.length); // cut before the end, not run to it
  expect((await chat()).status).toBe(200); // lifted: serving again
}, 120_000);

test("keys revoke --all: every key refused by the running server, list says revoked", async () => {
  expect((await chat(server.keys[0]!)).status).toBe(200);
  const r = cli(["keys", "revoke", "--all"]);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/revoked 2 key\(s\): conformance, extra0/);
  expect((await chat()).status).toBe(401);
  expect((await chat(server.keys[0]!)).status).toBe(401);
  const list = JSON.parse(cli(["keys", "list", "--json"]).out) as { name: string; revoked: string | null }[];
  expect(list.every((k) => k.revoked !== null)).toBe(true);
  expect(cli(["keys", "revoke", "--all"]).out).toContain("no active keys");
  expect(cli(["keys", "revoke", "--all", "conformance"]).code).toBe(2);
}, 120_000);

/**
 * A server started (in process, the real engine) on a state dir that `lock` put in lockdown: it refuses /v1/models
 * with 503; its log lines and state dir are returned.
 */
async function startLocked(lock: (file: string) => void) {
  const { log, lines } = memoryLogger();
  const stateDir = tmpDir();
  lock(lockdownFile(stateDir));
  const engine = await makeEngine();
  try {
    const { app, audit } = await createServer(parseConfig({ stateDir, model: [await tinyModel()] } as Record<string, unknown>), { log, engine });
    audit?.close();
    expect((await app.handle(req("/v1/models"))).status).toBe(503);
  } finally { await engine.dispose(); }
  return { lines: lines as { msg: string; level: number }[], stateDir };
}

test("a server started while in lockdown says so in its log (a restart does not end it)", async () => {
  const { lines, stateDir } = await startLocked((file) =>
    fs.writeFileSync(file, JSON.stringify({ since: "2030-01-01T00:00:00Z", by: { uid: 0, user: "root" }, reason: "incident 7" })));
  const warned = lines.find((l) => l.msg.startsWith("starting in lockdown"));
  expect(warned).toMatchObject({ level: 40, reason: "incident 7" });
  expect(warned!.msg).toContain(`appliance lockdown --off --state-dir ${stateDir}`);
});

// Fix-attack run: a lockdown path the server cannot read (a directory, a file another user made 0600) holds the
// server in lockdown, but the start said nothing of it, and `lockdown --off` failed with EISDIR.
test("a lockdown path that is not a readable file is still a lockdown: the start says so; lockdown --off lifts it", async () => {
  const { lines, stateDir } = await startLocked((file) => fs.mkdirSync(file));
  expect(lines.some((l) => l.msg.startsWith("starting in lockdown"))).toBe(true);
  expect(await main(["lockdown", "--off", "--state-dir", stateDir])).toBe(0);
  expect(fs.existsSync(lockdownFile(stateDir))).toBe(false);
});

