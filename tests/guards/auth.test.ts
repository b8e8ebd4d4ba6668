/** Deny by default: the whole route table, path spellings, keys, scopes, revocation without restart. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import { normalizePath } from "../../src/guards/auth";
import { KeyStore, checkKeysFileMode, keysFilePath } from "../../src/guards/keys";
import { listenApp, makeApp, req, tmpDir } from "../helpers";

let ctx: Awaited<ReturnType<typeof makeApp>>;
beforeAll(async () => {
  // docsPublic off: here the docs are one more route behind auth (tests/server/openai.test.ts covers the public default).
  ctx = await makeApp({ config: { docsPublic: false, rateLimit: { authFailuresPerMinute: 1000 } }, keys: [{ name: "full", scopes: ["chat", "completions", "embeddings", "models", "admin"] }, { name: "embed-only", scopes: ["embeddings"] }] });
});
afterAll(() => ctx.engine.dispose());

describe("route table", () => {
  test("every route but GET /health answers 401 without a key", async () => {
    const routes = ctx.app.routes.map((r) => ({ method: r.method, path: r.path.replace(/:(\w+)/g, "x") }));
    expect(routes.length).toBeGreaterThan(8);
    for (const r of routes) {
      const res = await ctx.app.handle(req(r.path, { method: r.method, ...(r.method === "POST" ? { json: {} } : {}) }));
      if (r.method === "GET" && r.path === "/health") expect(res.status).toBe(200);
      else {
        expect({ route: `${r.method} ${r.path}`, status: res.status }).toEqual({ route: `${r.method} ${r.path}`, status: 401 });
        // OpenAI's own 401 body: type invalid_request_error, code invalid_api_key (peer-fidelity run: it said authentication_error)
        expect(((await res.json()) as any).error).toMatchObject({ type: "invalid_request_error", code: "invalid_api_key" });
      }
    }
  });
  test("odd spellings of routes are not public", async () => {
    for (const p of ["/v1//models", "/v1/models/", "/V1/MODELS", "/%76%31/models", "/health/../v1/models", "/swagger/", "//swagger//json", "/metrics"]) {
      const res = await ctx.app.handle(req(p));
      expect({ p, status: res.status }).toEqual({ p, status: 401 });
    }
  });
  test("normalisation", () => {
    expect(normalizePath("/%2576%2531//Models/")).toBe("/v1/models");
    expect(normalizePath("/v1/../health")).toBe("/health");
  });
});

describe("keys", () => {
  test("Bearer and x-api-key both work; a wrong secret for a real id does not", async () => {
    const key = ctx.keys[0]!;
    expect((await ctx.app.handle(req("/v1/models", { key }))).status).toBe(200);
    expect((await ctx.app.handle(req("/v1/models", { headers: { "x-api-key": key } }))).status).toBe(200);
    const forged = key.slice(0, -4) + (key.endsWith("AAAA") ? "BBBB" : "AAAA");
    expect((await ctx.app.handle(req("/v1/models", { key: forged }))).status).toBe(401);
  });
  test("scopes: an embeddings-only key cannot chat", async () => {
    const res = await ctx.app.handle(req("/v1/chat/completions", { key: ctx.keys[1]!, json: { model: "tiny", messages: [{ role: "user", content: "x" }] } }));
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error.code).toBe("insufficient_scope");
  });
  test("scopes: /tokenize and /detokenize need chat or completions; a scraper's metrics key reaches nothing but /metrics", async () => {
    const keyOf = (name: string, scopes: ("chat" | "completions" | "metrics" | "embeddings")[]) => ctx.store.create({ name, scopes }).key;
    const keys = { metrics: keyOf("scraper", ["metrics"]), embeddings: ctx.keys[1]!, chat: keyOf("chat-only", ["chat"]), completions: keyOf("completions-only", ["completions"]) };
    const call = (p: string, key: string) => ctx.app.handle(req(p, { key, json: p === "/tokenize" ? { model: "tiny", content: "hi" } : { model: "tiny", tokens: [1] } }));
    for (const p of ["/tokenize", "/detokenize", "/%74okenize", "/v1/../detokenize"]) {
      for (const who of ["metrics", "embeddings"] as const) {
        const res = await call(p, keys[who]);
        expect({ p, who, status: res.status }).toEqual({ p, who, status: 403 });
        expect(((await res.json()) as any).error).toMatchObject({ code: "insufficient_scope", type: "permission_error" });
      }
    }
    for (const p of ["/tokenize", "/detokenize"]) {
      for (const who of ["chat", "completions"] as const) expect({ p, who, status: (await call(p, keys[who])).status }).toEqual({ p, who, status: 200 });
    }
    expect((await ctx.app.handle(req("/metrics", { key: keys.metrics }))).status).toBe(200);
  });
  test("revocation and new keys take effect without a restart", async () => {
    const other = new KeyStore(keysFilePath(ctx.stateDir)); // as the CLI would, from another process
    const { key } = other.create({ name: "late" });
    expect((await ctx.app.handle(req("/v1/models", { key }))).status).toBe(200);
    other.revoke("late");
    expect((await ctx.app.handle(req("/v1/models", { key }))).status).toBe(401);
  });
  test("rotation keeps the old secret only for the grace period", () => {
    let now = 1_000_000;
    const store = new KeyStore(keysFilePath(tmpDir()), () => now);
    const { key: old } = store.create({ name: "r" });
    const { key: fresh } = store.rotate("r", 60_000);
    expect(store.verify(old)?.name).toBe("r");
    expect(store.verify(fresh)?.name).toBe("r");
    now += 60_001;
    expect(store.verify(old)).toBeUndefined();
    expect(store.verify(fresh)?.name).toBe("r");
  });
  test("expired keys are refused", () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const store = new KeyStore(keysFilePath(tmpDir()), () => now);
    const { key } = store.create({ name: "e", expiresAt: new Date(now + 1000) });
    expect(store.verify(key)).toBeDefined();
    now += 1001;
    expect(store.verify(key)).toBeUndefined();
  });
  test("the file holds no secret, is 0600, and a group-readable file is refused with the chmod to run", () => {
    const dir = tmpDir();
    const store = new KeyStore(keysFilePath(dir));
    const { key } = store.create({ name: "k" });
    const text = fs.readFileSync(store.file, "utf8");
    expect(text).not.toContain(key.slice(21));
    expect(fs.statSync(store.file).mode & 0o777).toBe(0o600);
    fs.chmodSync(store.file, 0o640);
    expect(() => checkKeysFileMode(store.file)).toThrow(/chmod 600/);
  });
  test("repeated failed auth from one address is throttled", async () => {
    const local = await makeApp({ engine: ctx.engine, config: { rateLimit: { authFailuresPerMinute: 3 } } });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await local.app.handle(req("/v1/models", { key: "apk_nope" }))).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
  });
  // Operations run: the throttle was checked before the key, so on the loopback bind (one network) any local process
  // sending bad keys from 127.0.0.x locked every client out, the metrics scraper too, with its valid key.
  test("a neighbour on the same network past the throttle does not lock out a valid key (the scraper's, a client's)", async () => {
    const local = await makeApp({ engine: ctx.engine, config: { rateLimit: { authFailuresPerMinute: 2, authFailureNetworkFactor: 2 } },
      keys: [{ name: "scraper", scopes: ["metrics"] }, { name: "client", scopes: ["models"] }] });
    const base = listenApp(local.app);
    const port = Number(new URL(base).port);
    // Raw sockets from other loopback addresses: the same network ("all of loopback") as the clients on 127.0.0.1.
    const bad = (from: string) => new Promise<number>((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port, localAddress: from }, () => s.end(`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer apk_0000000000000000_bad\r\nConnection: close\r\n\r\n`));
      let got = "";
      s.on("data", (d) => { got += d; }).on("end", () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1]))).on("error", reject);
    });
    try {
      const statuses = [];
      for (const from of ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"]) statuses.push(await bad(from));
      expect(statuses).toEqual([401, 401, 401, 401, 429]); // the network's 4 failures a minute, then 429 for the next
      const metrics = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${local.keys[0]}` } });
      const models = await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${local.keys[1]}` } });
      expect([metrics.status, models.status]).toEqual([200, 200]);
      await Promise.all([metrics.arrayBuffer(), models.arrayBuffer()]);
      expect((await fetch(`${base}/v1/models`, { headers: { authorization: "Bearer apk_nope" } })).status).toBe(429); // failures still are
    } finally {
      local.app.server?.stop(true);
    }
  });
});

test("a keys file broken or exposed while running refuses every key (fail closed), then recovers", async () => {
  const local = await makeApp({ engine: ctx.engine });
  const file = keysFilePath(local.stateDir);
  const good = fs.readFileSync(file, "utf8");
  const models = () => local.app.handle(req("/v1/models", { key: local.key }));
  expect((await models()).status).toBe(200);
  fs.writeFileSync(file, "{ not json");
  expect((await models()).status).toBe(401);
  fs.writeFileSync(file, good);
  expect((await models()).status).toBe(200);
  fs.chmodSync(file, 0o644);
  fs.appendFileSync(file, " "); // a change the store notices
  expect((await models()).status).toBe(401);
  fs.chmodSync(file, 0o600);
  fs.appendFileSync(file, " ");
  expect((await models()).status).toBe(200);
});
