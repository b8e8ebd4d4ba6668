/**
 * A gateway in front of an upstream that speaks HTTPS with a private CA and asks for a client certificate (an
 * appliance run with --tls-cert/--tls-key/--tls-client-ca, as the README's TLS section pairs them): both compiled
 * binaries, certificates made with openssl. An operator run found the gateway had no way to show a client
 * certificate or trust a private CA (every request: 503 upstream_unavailable); upstreams[].tlsCa/tlsCert/tlsKey.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { builtBinary, tmpDir, untilListening } from "../helpers";
import { makePki, type TestPki } from "../ops/certs";
import { parseConfig } from "../../src/config/load";

let pki: TestPki, up: BinaryServer;
beforeAll(async () => {
  pki = makePki(tmpDir("appliance-gw-pki-"));
  up = await startBinary(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.ca]);
}, 120_000);
afterAll(async () => {
  expect(await up.stop()).toBe(0);
  fs.rmSync(pki.dir, { recursive: true, force: true });
});

/** `appliance serve` as a gateway with no model of its own, on a config file holding this upstream entry. */
async function gateway(upstream: Record<string, unknown>) {
  const dir = tmpDir("appliance-gw-tls-"), stateDir = path.join(dir, "state"), bin = await builtBinary();
  const cfg = path.join(dir, "config.json");
  fs.writeFileSync(cfg, JSON.stringify({ upstreams: [{ url: `${up.baseURL.replace("http:", "https:")}/v1`, apiKey: up.key, models: ["tiny"], ...upstream }] }));
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const key = Bun.spawnSync([bin, "keys", "create", "--name", "client", "--scopes", "chat", "--state-dir", stateDir], { env }).stdout.toString().trim();
  const proc = Bun.spawn([bin, "serve", "--config", cfg, "--state-dir", stateDir, "--port", "0"], { env, stdout: "pipe", stderr: "pipe" });
  const { port, log } = await untilListening(proc, "gateway");
  const stop = async () => { proc.kill("SIGTERM"); const code = await proc.exited; fs.rmSync(dir, { recursive: true, force: true }); return code; };
  return { client: new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 }), log, stop };
}

test("with tlsCa, tlsCert and tlsKey the gateway reaches an mTLS upstream with a private CA", async () => {
  const gw = await gateway({ tlsCa: pki.ca, tlsCert: pki.clientCert, tlsKey: pki.clientKey });
  try {
    const r = await gw.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 4 });
    expect(r.choices[0]!.message.role).toBe("assistant");
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
}, 120_000);

test("without the client certificate the upstream refuses the gateway: 503 upstream_unavailable, nothing served", async () => {
  const gw = await gateway({ tlsCa: pki.ca });
  try {
    const err = await gw.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
}, 120_000);

test("an upstream URL written HTTPS:// takes the TLS settings as https:// does", () => {
  const c = parseConfig({ upstreams: [{ url: "HTTPS://127.0.0.1:9/v1", models: ["m"], tlsCa: pki.ca }] });
  expect(c.upstreams[0]!.tlsCa).toBe(pki.ca);
});

test("a certificate without its key or with another key, TLS files on an http:// upstream, an unreadable file: exit 2 naming upstreams", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-gw-tls-bad-");
  const garbageCa = path.join(dir, "garbage-ca.pem"), encryptedKey = path.join(dir, "encrypted.key");
  fs.writeFileSync(garbageCa, "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n");
  // PKCS#8 encrypted ("BEGIN ENCRYPTED PRIVATE KEY"): was refused as "no PEM private key"
  const enc = Bun.spawnSync(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "pass:x", "-in", pki.clientKey, "-out", encryptedKey]);
  expect(enc.exitCode).toBe(0);
  const exposedKey = path.join(dir, "exposed.key");
  fs.copyFileSync(pki.clientKey, exposedKey);
  fs.chmodSync(exposedKey, 0o644);
  try {
    for (const [upstream, message] of [
      [{ tlsCert: pki.clientCert }, "tlsCert and tlsKey go together"],
      [{ url: "http://127.0.0.1:9/v1", tlsCa: pki.ca }, "need an https:// url"],
      [{ tlsCa: path.join(dir, "missing.pem") }, "tlsCa: cannot read"],
      [{ tlsCert: pki.clientCert, tlsKey: pki.clientCert }, "holds no PEM private key"],
      [{ tlsCert: pki.clientCert, tlsKey: pki.serverKey }, "is not the private key of the certificate"],
      [{ tlsCa: garbageCa }, "holds a certificate that does not parse"],
      [{ tlsCert: pki.clientCert, tlsKey: encryptedKey }, "an encrypted key is not read"],
      // the listener's rule for its own key (--tls-key), now the upstream client key's too: was accepted at 0644
      [{ tlsCert: pki.clientCert, tlsKey: exposedKey }, "tlsKey: " + exposedKey + " is readable by every user (mode 644); run: chmod o-r"],
    ] as const) {
      const cfg = path.join(dir, "config.json");
      fs.writeFileSync(cfg, JSON.stringify({ upstreams: [{ url: "https://127.0.0.1:9/v1", models: ["m"], ...upstream }] }));
      // a timeout: a case the server does not refuse would serve on (and the test wait) forever
      const r = Bun.spawnSync([bin, "serve", "--config", cfg, "--state-dir", path.join(dir, "state"), "--port", "0"], { env: { PATH: "/usr/bin:/bin", HOME: dir }, timeout: 60_000 });
      expect([r.exitCode, r.stderr.toString()]).toEqual([2, expect.stringContaining(message)]);
      expect(r.stderr.toString()).toContain("upstreams");
    }
    // verify fails what serve refuses: the exposed client key too
    const cfg = path.join(dir, "config.json");
    fs.writeFileSync(cfg, JSON.stringify({ upstreams: [{ url: "https://127.0.0.1:9/v1", models: ["m"], tlsCert: pki.clientCert, tlsKey: exposedKey }] }));
    const v = Bun.spawnSync([bin, "verify", "--config", cfg, "--state-dir", path.join(dir, "state"), "--skip-models"], { env: { PATH: "/usr/bin:/bin", HOME: dir } });
    expect([v.exitCode, v.stdout.toString()]).toEqual([1, expect.stringContaining(`${exposedKey} (upstreams tlsKey) is readable by every user: mode 0644`)]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
