/**
 * Request signing with a secret the request never carries (issue 10, items 1-2): a captured signed
 * request cannot be re-signed, replays are refused per key without eviction, and a restart does not
 * reopen the replay window.
 */
import { afterAll, describe, expect, test } from "bun:test";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { KeyStore, keysFilePath } from "../../src/guards/keys";
import { NonceCache, sign } from "../../src/guards/signature";
import { silentLogger } from "../../src/log/logger";
import { createServer } from "../../src/server/create-server";
import { makeApp, makeEngine, req, tinyModel, tmpDir } from "../helpers";

const engine = await makeEngine();
afterAll(() => engine.dispose());
const pair = () => crypto.generateKeyPairSync("ed25519");
const body = JSON.stringify({ model: "tiny", input: "hello" });
const headersFor = (ts: number, sig: string) => ({ "content-type": "application/json", "x-appliance-timestamp": String(ts), "x-appliance-signature": sig });

/** The app over an existing state dir, as `serve` builds it at a given start time (a "process"). */
/** A server over the state dir; `exit()` lets go of it as the process's exit would (one server per state dir). */
async function serverOver(stateDir: string, clock: () => number) {
  const config = parseConfig({ stateDir, model: [await tinyModel()] } as Record<string, unknown>);
  const s = await createServer(config, { engine, keys: new KeyStore(keysFilePath(stateDir), clock), log: silentLogger(), clock });
  return { app: s.app, exit: () => s.audit?.close() };
}
const appOver = async (stateDir: string, clock: () => number) => (await serverOver(stateDir, clock)).app;

describe("Ed25519 request signing", () => {
  const now = Date.parse("2030-01-01T00:00:00Z");
  const ts = now / 1000;
  const { privateKey, publicKey } = pair();
  const pem = publicKey.export({ format: "pem", type: "spki" }).toString();

  test("a captured signed request does not let its holder sign a new one (the old HMAC-of-the-bearer-key scheme)", async () => {
    const ctx = await makeApp({ engine, clock: () => now, keys: [{ name: "s", requireSignature: true, publicKey: pem }] });
    const capturedSig = sign(privateKey, "POST", "/v1/embeddings", String(ts), body);
    expect((await ctx.app.handle(req("/v1/embeddings", { key: ctx.key, body, headers: headersFor(ts, capturedSig) }))).status).toBe(200);
    // Everything an eavesdropper has: the bearer key and the request. Derive the old signing key from it and forge a chat.
    const forgedBody = JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "forged" }], max_tokens: 2 });
    const hmacKey = crypto.createHash("sha256").update(ctx.key).digest("hex");
    const canonical = `POST\n/v1/chat/completions\n${ts}\n${crypto.createHash("sha256").update(forgedBody).digest("hex")}`;
    for (const sig of [crypto.createHmac("sha256", hmacKey).update(canonical).digest("hex"), capturedSig]) {
      const forged = await ctx.app.handle(req("/v1/chat/completions", { key: ctx.key, body: forgedBody, headers: headersFor(ts, sig) }));
      expect(forged.status).toBe(401);
      expect(((await forged.json()) as any).error.code).toBe("invalid_signature");
    }
  });

  test("valid signature passes (base64 or hex); replay, skew, tampering, another key's signature and absence are refused", async () => {
    const ctx = await makeApp({ engine, clock: () => now, keys: [{ name: "s", requireSignature: true, publicKey: pem }] });
    const send = (t: number, sig: string, b = body) => ctx.app.handle(req("/v1/embeddings", { key: ctx.key, body: b, headers: headersFor(t, sig) }));
    expect((await send(ts, sign(privateKey, "POST", "/v1/embeddings", String(ts), body))).status).toBe(200);
    const replay = await send(ts, sign(privateKey, "POST", "/v1/embeddings", String(ts), body));
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as any).error.message).toMatch(/Replayed/);
    // The same signature spelled in hex is the same message: still a replay.
    const hex = Buffer.from(sign(privateKey, "POST", "/v1/embeddings", String(ts), body), "base64").toString("hex");
    expect(((await (await send(ts, hex)).json()) as any).error.message).toMatch(/Replayed/);
    const hex2 = Buffer.from(sign(privateKey, "POST", "/v1/embeddings", String(ts + 1), body), "base64").toString("hex");
    expect((await send(ts + 1, hex2)).status).toBe(200);
    expect((await send(ts + 301, sign(privateKey, "POST", "/v1/embeddings", String(ts + 301), body))).status).toBe(401);
    const tampered = sign(privateKey, "POST", "/v1/embeddings", String(ts + 2), body);
    expect((await send(ts + 2, tampered, body.replace("hello", "hellO"))).status).toBe(401);
    expect((await send(ts + 2, sign(pair().privateKey, "POST", "/v1/embeddings", String(ts + 2), body))).status).toBe(401);
    const unsigned = await ctx.app.handle(req("/v1/embeddings", { key: ctx.key, body, headers: { "content-type": "application/json" } }));
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as any).error.code).toBe("invalid_signature");
    // Every 401 carries its challenge (RFC 9110 §15.5.2; fix-attack run: the signature's did not)
    expect(unsigned.headers.get("www-authenticate")).toBe("Bearer");
  });

  test("the keys file holds only the public key; a signature-requiring key needs one", () => {
    const dir = tmpDir();
    try {
      const store = new KeyStore(keysFilePath(dir));
      expect(() => store.create({ name: "x", requireSignature: true })).toThrow(/--public-key/);
      expect(() => store.create({ name: "x", requireSignature: true, publicKey: "not a key" })).toThrow(/Ed25519/);
      const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "pem", type: "spki" }).toString();
      expect(() => store.create({ name: "x", requireSignature: true, publicKey: rsa })).toThrow(/not ed25519/);
      const { record } = store.create({ name: "x", requireSignature: true, publicKey: pem });
      const raw = publicKey.export({ format: "jwk" }).x!;
      expect(record.signingKey).toBe(Buffer.from(raw, "base64url").toString("base64"));
      expect(fs.readFileSync(keysFilePath(dir), "utf8")).not.toContain("PRIVATE");
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });
});

test("keys create/rotate on the CLI: --require-signature needs --public-key (exit 2); rotate --public-key replaces the signing key", async () => {
  const { main } = await import("../../src/main");
  const stateDir = tmpDir();
  try {
    const now = Date.now();
    const ts = Math.floor(now / 1000);
    const first = pair(), second = pair();
    const pub = (k: crypto.KeyObject) => { const f = path.join(stateDir, `${crypto.randomUUID()}.pub`); fs.writeFileSync(f, k.export({ format: "pem", type: "spki" })); return f; };
    expect(await main(["keys", "create", "--name", "s", "--require-signature", "--state-dir", stateDir])).toBe(2);
    expect(await main(["keys", "create", "--name", "s", "--require-signature", "--public-key", pub(first.publicKey), "--state-dir", stateDir])).toBe(0);
    const store = new KeyStore(keysFilePath(stateDir));
    const { key } = store.rotate("s", 0, fs.readFileSync(pub(second.publicKey), "utf8"));
    const app = await appOver(stateDir, () => now - 1000);
    const send = (k: crypto.KeyObject, t: number) => app.handle(req("/v1/embeddings", { key, body, headers: headersFor(t, sign(k, "POST", "/v1/embeddings", String(t), body)) }));
    expect((await send(first.privateKey, ts)).status).toBe(401);
    expect((await send(second.privateKey, ts)).status).toBe(200);
  } finally { fs.rmSync(stateDir, { recursive: true, force: true }); }
});

describe("nonce cache", () => {
  test("per key, never evicts an unexpired entry: a full key is refused (429) and another key's replay stays refused", () => {
    const cache = new NonceCache(3);
    const now = 1_000_000;
    cache.add("victim", "captured", now + 600_000, now);
    for (const n of ["a", "b", "c"]) cache.add("flooder", n, now + 600_000, now);
    let err: any;
    try { cache.add("flooder", "d", now + 600_000, now); } catch (e) { err = e; }
    expect(err?.status).toBe(429);
    expect(() => cache.check("victim", "captured", now)).toThrow(/Replayed/);
    expect(() => cache.check("flooder", "a", now)).toThrow(/Replayed/); // the full cache kept its entries
    // Expired entries go, and then the key may sign again.
    cache.add("flooder", "d", now + 1_200_000, now + 600_000);
    expect(cache.size("flooder")).toBe(1);
  });

  test("a request refused by the rate limiter is not remembered; accepted ones count against the key's limit", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const { privateKey, publicKey } = pair();
    const ctx = await makeApp({ engine, clock: () => now, keys: [{ name: "s", rpm: 1, requireSignature: true, publicKey: publicKey.export({ format: "pem", type: "spki" }).toString() }] });
    const send = (t: number) => ctx.app.handle(req("/v1/embeddings", { key: ctx.key, body, headers: headersFor(t, sign(privateKey, "POST", "/v1/embeddings", String(t), body)) }));
    const ts = now / 1000;
    expect((await send(ts)).status).toBe(200);
    expect((await send(ts + 1)).status).toBe(429); // valid signature, but over the key's rate: refused and not stored
    now += 61_000;
    expect((await send(ts + 1)).status).toBe(200); // so the same message is accepted once the key has budget again
    expect((await send(ts + 1)).status).toBe(401); // and only once
  });
});

test("a restart does not reopen the replay window: timestamps from before the process started are refused", async () => {
  const stateDir = tmpDir();
  try {
    const { privateKey, publicKey } = pair();
    const { key } = new KeyStore(keysFilePath(stateDir)).create({ name: "s", requireSignature: true, publicKey: publicKey.export({ format: "pem", type: "spki" }).toString() });
    let now = Date.parse("2030-01-01T00:00:00Z");
    const ts = now / 1000;
    const captured = () => req("/v1/embeddings", { key, body, headers: headersFor(ts, sign(privateKey, "POST", "/v1/embeddings", String(ts), body)) });
    const { app: first, exit } = await serverOver(stateDir, () => now);
    expect((await first.handle(captured())).status).toBe(200);
    expect((await first.handle(captured())).status).toBe(401);
    now += 10_000; // the service restarts 10 s later, well inside the 300 s window
    exit();
    const second = await appOver(stateDir, () => now);
    const replay = await second.handle(captured());
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as any).error.message).toMatch(/before the server started/);
    const fresh = req("/v1/embeddings", { key, body, headers: headersFor(now / 1000, sign(privateKey, "POST", "/v1/embeddings", String(now / 1000), body)) });
    expect((await second.handle(fresh)).status).toBe(200);
  } finally { fs.rmSync(stateDir, { recursive: true, force: true }); }
});

// Claims audit (stop 74): a request timestamped ahead of the server's clock (inside the 300 s allowed) was replayable
// once after a restart that came before its timestamp: "from before the process started" did not cover it, and the
// replay cache is memory. The newest such timestamp accepted is now kept in the state dir, and a restarted server
// refuses timestamps up to it.
test("a restart does not reopen the replay window for a request timestamped ahead of the server's clock", async () => {
  const stateDir = tmpDir();
  try {
    const { privateKey, publicKey } = pair();
    const { key } = new KeyStore(keysFilePath(stateDir)).create({ name: "s", requireSignature: true, publicKey: publicKey.export({ format: "pem", type: "spki" }).toString() });
    let now = Date.parse("2030-01-01T00:00:00Z");
    const ahead = now / 1000 + 120; // a client whose clock leads by two minutes
    const signed = (t: number) => req("/v1/embeddings", { key, body, headers: headersFor(t, sign(privateKey, "POST", "/v1/embeddings", String(t), body)) });
    const { app: first, exit } = await serverOver(stateDir, () => now);
    expect((await first.handle(signed(ahead))).status).toBe(200);
    expect((await first.handle(signed(ahead))).status).toBe(401);
    now += 10_000;
    exit();
    const second = await serverOver(stateDir, () => now);
    const replay = await second.app.handle(signed(ahead));
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as any).error.message).toMatch(/not after one the server accepted before it restarted/);
    // A fresh request from the same leading clock, signed later, passes; so does one from a clock in step.
    expect((await second.app.handle(signed(ahead + 1))).status).toBe(200);
    now += 200_000; // past the leading timestamps: a third process refuses nothing new from a clock in step
    second.exit();
    const third = await appOver(stateDir, () => now);
    expect((await third.handle(signed(now / 1000))).status).toBe(200);
  } finally { fs.rmSync(stateDir, { recursive: true, force: true }); }
});

// Attack on the fix (stop 74): one floor for every key let one client's leading clock lock every other signing key out
// for up to 300 s after a restart, and a planted floor far ahead locked them out for good.
test("the floor is per signing key, and one further ahead than any accepted timestamp could be is ignored", async () => {
  const stateDir = tmpDir();
  try {
    const a = pair(), b = pair();
    const store = new KeyStore(keysFilePath(stateDir));
    const keyA = store.create({ name: "a", requireSignature: true, publicKey: a.publicKey.export({ format: "pem", type: "spki" }).toString() }).key;
    const keyB = store.create({ name: "b", requireSignature: true, publicKey: b.publicKey.export({ format: "pem", type: "spki" }).toString() }).key;
    let now = Date.parse("2030-01-01T00:00:00Z");
    const signed = (key: string, priv: crypto.KeyObject, t: number) => req("/v1/embeddings", { key, body, headers: headersFor(t, sign(priv, "POST", "/v1/embeddings", String(t), body)) });
    const first = await serverOver(stateDir, () => now);
    expect((await first.app.handle(signed(keyA, a.privateKey, now / 1000 + 295))).status).toBe(200); // A's clock leads by ~5 min
    now += 10_000;
    first.exit();
    const second = await serverOver(stateDir, () => now);
    expect((await second.app.handle(signed(keyB, b.privateKey, now / 1000))).status).toBe(200); // B, in step: not locked out
    expect((await second.app.handle(signed(keyB, b.privateKey, now / 1000 + 60))).status).toBe(200);
    expect((await second.app.handle(signed(keyA, a.privateKey, now / 1000 + 1))).status).toBe(401); // A's own floor holds
    second.exit();
    fs.writeFileSync(path.join(stateDir, "signature-floor"), JSON.stringify({ [`pk:${store.list().find((k) => k.name === "b")!.signingKey}`]: now / 1000 + 10 ** 9 }));
    now += 10_000;
    const third = await appOver(stateDir, () => now);
    expect((await third.handle(signed(keyB, b.privateKey, now / 1000))).status).toBe(200); // a planted floor in the far future: ignored
  } finally { fs.rmSync(stateDir, { recursive: true, force: true }); }
});
