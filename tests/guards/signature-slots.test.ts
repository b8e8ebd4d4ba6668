/**
 * Red team (binary): (1) a signing key's concurrency slot was taken as soon as the bearer key checked out, before the
 * body (and so the signature) arrived: whoever captured the bearer key alone held every slot with bodies never sent
 * (4 per 30 s body deadline, under the failed-auth throttle) and the owner's correctly signed requests got 429 for as
 * long as they liked. Until its signature is checked, a request now holds a slot of its address network's, not the
 * key's. (2) A signature was refused as a replay only with the key it was sent with: the same one sent with another
 * key registered with the same public key passed (the signed text names no key; the nonces were kept per key).
 */
import { afterAll, expect, test } from "bun:test";
import crypto from "node:crypto";
import os from "node:os";
import { sign } from "../../src/guards/signature";
import { makeApp, makeEngine, until } from "../helpers";

const engine = await makeEngine();
afterAll(() => engine.dispose());
const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
const pem = publicKey.export({ format: "pem", type: "spki" }).toString();
/** This machine's own non-loopback IPv4 address: a second network to send from. */
const own = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal)?.address;
if (!own) console.warn("!!! signature-slots.test.ts: no non-loopback IPv4 address here; the owner's request is sent from loopback too");

/** A second from now: a timestamp from before the server started is refused. */
const soon = () => String(Math.floor(Date.now() / 1000) + 1);
const signed = (key: string, body: string, ts = soon()) => ({
  authorization: `Bearer ${key}`, "content-type": "application/json",
  "x-appliance-timestamp": ts, "x-appliance-signature": sign(privateKey, "POST", "/v1/embeddings", ts, body),
});

test.skipIf(!own)("bodies never sent with a captured bearer key hold their network's slots, not the key's: the owner elsewhere is served", async () => {
  const ctx = await makeApp({ engine, config: { allowedHosts: [own!] }, keys: [{ name: "signer", scopes: ["embeddings"], requireSignature: true, publicKey: pem, maxConcurrent: 2 }] });
  ctx.app.listen({ hostname: "0.0.0.0", port: 0 });
  const port = Number(ctx.app.server!.port);
  const held: { write(s: string): unknown; end(): unknown }[] = [];
  try {
    // The attacker, on loopback: two requests whose bodies never come.
    for (let i = 0; i < 2; i++) {
      held.push(await Bun.connect({ hostname: "127.0.0.1", port, socket: { data(_s, _d) {}, error() {} } }));
      held.at(-1)!.write(`POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ctx.key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`);
    }
    const body = JSON.stringify({ model: "tiny", input: "hello" });
    const post = (host: string) => fetch(`http://${host}:${port}/v1/embeddings`, { method: "POST", headers: signed(ctx.key, body), body });
    // Loopback's slots are taken (both held bodies arrived at the server)...
    await until(async () => ((await post("127.0.0.1")).status === 429 ? true : undefined), 20_000, "the held bodies to take loopback's slots");
    // ...and the owner, from another network, is served (it was 429: the key's slots were the attacker's).
    const r = await post(own!);
    expect(r.status).toBe(200);
  } finally {
    for (const s of held) s.end();
    ctx.app.server?.stop(true);
  }
});

test("a signature sent with one key is a replay with another key of the same public key", async () => {
  const ctx = await makeApp({ engine, keys: [
    { name: "one", scopes: ["embeddings"], requireSignature: true, publicKey: pem },
    { name: "two", scopes: ["embeddings"], requireSignature: true, publicKey: pem },
  ] });
  const body = JSON.stringify({ model: "tiny", input: "hello" });
  const ts = soon();
  const send = (key: string) => ctx.app.handle(new Request("http://localhost/v1/embeddings", { method: "POST", headers: signed(key, body, ts), body }));
  expect((await send(ctx.keys[0]!)).status).toBe(200);
  const again = await send(ctx.keys[1]!);
  expect(again.status).toBe(401);
  expect(((await again.json()) as { error: { message: string } }).error.message).toBe("Replayed request signature.");
});
