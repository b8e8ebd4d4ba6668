/**
 * TLS and mTLS on the real compiled binary: certificates made with openssl, spoken to with curl and
 * openssl s_client (real handshakes, no mocks). Plus the start-time checks of serverTls.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { ConfigError } from "../../src/config/load";
import { serverTls } from "../../src/server/tls";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { builtBinary, tmpDir, until } from "../helpers";
import { makePki, type TestPki } from "./certs";

let pki: TestPki;
beforeAll(() => { pki = makePki(tmpDir("appliance-pki-")); });
afterAll(() => { fs.rmSync(pki.dir, { recursive: true, force: true }); });

async function sh(cmd: string[], stdin = "") {
  const p = Bun.spawn(cmd, { stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code: await p.exited, out, err };
}

/** curl -i with the given TLS flags; the API key is sent when given. */
function curl(url: string, flags: string[], key?: string, body?: unknown) {
  const args = ["curl", "-sS", "-i", "--max-time", "60", "--cacert", pki.ca, ...flags];
  if (key) args.push("-H", `authorization: Bearer ${key}`);
  if (body) args.push("-H", "content-type: application/json", "--data-binary", JSON.stringify(body));
  return sh([...args, url]);
}

const chat = { model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 4 };

/** `appliance status` for a running server, given a config file with its port, state dir and these TLS settings. */
async function status(s: BinaryServer, tls: Record<string, string>) {
  const file = path.join(pki.dir, `status-${Object.keys(tls).length}.json`);
  fs.writeFileSync(file, JSON.stringify({ port: Number(new URL(s.baseURL).port), stateDir: s.stateDir, ...tls }));
  return sh([await builtBinary(), "status", "--config", file]);
}
const httpsBase = (s: BinaryServer) => s.baseURL.replace("http://", "https://");

describe("serverTls refuses what would fail later or be weak", () => {
  const refused = (settings: Partial<Parameters<typeof serverTls>[0]>, field: string, message: RegExp, now = Date.now()) => {
    let error: unknown;
    try { serverTls({ tlsCert: "", tlsKey: "", tlsClientCa: "", ...settings }, now); } catch (e) { error = e; }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
    expect((error as Error).message).toMatch(message);
  };
  test("plain HTTP when nothing is set", () => expect(serverTls({ tlsCert: "", tlsKey: "", tlsClientCa: "" })).toBeUndefined());
  test("cert without key, key without cert, client CA without TLS", () => {
    refused({ tlsCert: pki.serverCert }, "tlsKey", /without --tls-key/);
    refused({ tlsKey: pki.serverKey }, "tlsCert", /without --tls-cert/);
    refused({ tlsClientCa: pki.ca }, "tlsClientCa", /need TLS/);
  });
  // An operator run: a 0644 private key passed serve and verify (the keys file at 0644 is refused).
  test("a private key every user may read is refused (exit 2 from the binary, a failed files check in verify); group-readable is not", async () => {
    const exposed = path.join(pki.dir, "exposed.key");
    fs.copyFileSync(pki.serverKey, exposed);
    fs.chmodSync(exposed, 0o644);
    refused({ tlsCert: pki.serverCert, tlsKey: exposed }, "tlsKey", /readable by every user \(mode 644\); run: chmod o-r/);
    const bin = await builtBinary(), home = tmpDir("appliance-tls-mode-");
    try {
      const cfg = path.join(home, "config.json");
      fs.writeFileSync(cfg, JSON.stringify({ stateDir: path.join(home, "state"), tlsCert: pki.serverCert, tlsKey: exposed }));
      const serve = await sh([bin, "serve", "--config", cfg, "--port", "0"]);
      expect([serve.code, serve.err]).toEqual([2, expect.stringContaining("readable by every user")]);
      const verify = await sh([bin, "verify", "--config", cfg, "--skip-models"]);
      expect(verify.code).toBe(1);
      expect(verify.out).toContain("(tlsKey) is readable by every user");
      fs.chmodSync(exposed, 0o640);
      expect(serverTls({ tlsCert: pki.serverCert, tlsKey: exposed, tlsClientCa: "" })).toBeDefined();
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  test("a key that is not the certificate's, a 1024-bit RSA key, unreadable and non-PEM files", () => {
    refused({ tlsCert: pki.serverCert, tlsKey: pki.clientKey }, "tlsKey", /not the private key/);
    refused({ tlsCert: pki.weakCert, tlsKey: pki.weakKey }, "tlsKey", /1024-bit RSA/);
    refused({ tlsCert: path.join(pki.dir, "missing.pem"), tlsKey: pki.serverKey }, "tlsCert", /ENOENT/);
    refused({ tlsCert: pki.serverKey, tlsKey: pki.serverKey }, "tlsCert", /no PEM certificate/);
    refused({ tlsCert: pki.serverCert, tlsKey: pki.serverCert }, "tlsKey", /not an unencrypted PEM private key/);
    refused({ tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.serverKey }, "tlsClientCa", /no PEM certificate/);
  });
  test("an expired or not yet valid certificate (the test certificates are valid for two days)", () => {
    const day = 86_400_000;
    refused({ tlsCert: pki.serverCert, tlsKey: pki.serverKey }, "tlsCert", /expired/, Date.now() + 3 * day);
    refused({ tlsCert: pki.serverCert, tlsKey: pki.serverKey }, "tlsCert", /not valid before/, Date.now() - day);
    refused({ tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.ca }, "tlsCert", /expired/, Date.now() + 3 * day);
  });
});

describe("the binary serves HTTPS", () => {
  let server: BinaryServer;
  beforeAll(async () => { server = await startBinary(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey]); }, 120_000);
  afterAll(async () => { expect(await server.stop()).toBe(0); });

  test("curl over TLS: health and a chat completion; the log names the https URL", async () => {
    expect(server.log()).toContain('"url":"https://');
    const health = await curl(`${httpsBase(server)}/health`, []);
    expect(health.code).toBe(0);
    expect(health.out).toMatch(/^HTTP\/[\d.]+ 200/);
    const r = await curl(`${httpsBase(server)}/v1/chat/completions`, [], server.key, chat);
    expect(r.out).toMatch(/^HTTP\/[\d.]+ 200/);
    expect(JSON.parse(r.out.slice(r.out.indexOf("\r\n\r\n") + 4)).choices).toHaveLength(1);
  });

  // An operator run: status (like update, rollback and install) asked http:// of the TLS port and reported the reset.
  test("status reads /health over HTTPS", async () => {
    const r = await status(server, { tlsCert: pki.serverCert, tlsKey: pki.serverKey });
    expect(r.out).toContain(`health:    ok (${httpsBase(server)}/health)`);
    expect(r.code).toBe(0);
  });

  // A fix-attack run: incident snapshot fetched the https URL checking the certificate against the system CAs.
  test("incident snapshot reads /health over HTTPS", async () => {
    const dir = tmpDir("appliance-tls-incident-"), cfg = path.join(dir, "config.json"), out = path.join(dir, "s.tar.gz");
    try {
      fs.writeFileSync(cfg, JSON.stringify({ port: Number(new URL(server.baseURL).port), stateDir: server.stateDir, tlsCert: pki.serverCert, tlsKey: pki.serverKey }));
      const r = await sh([await builtBinary(), "incident", "snapshot", "--config", cfg, "--out", out]);
      expect(r.code).toBe(0);
      expect((await sh(["tar", "-xzf", out, "-C", dir])).code).toBe(0);
      const folder = fs.readdirSync(dir).find((f) => fs.statSync(path.join(dir, f)).isDirectory())!;
      expect(JSON.parse(fs.readFileSync(path.join(dir, folder, "health.json"), "utf8"))).toMatchObject({ url: `${httpsBase(server)}/health`, status: 200 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("plain HTTP to the TLS port gets no HTTP answer", async () => {
    const r = await sh(["curl", "-sS", "-i", "--max-time", "30", `${server.baseURL}/health`]);
    expect(r.code).not.toBe(0);
    expect(r.out).not.toMatch(/^HTTP\//);
  });

  test("TLS 1.2 is accepted, TLS 1.1 and 1.0 are refused in the handshake", async () => {
    const port = new URL(server.baseURL).port;
    const handshake = (version: string) => sh(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, version,
      "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", pki.ca], "");
    const ok = await handshake("-tls1_2");
    expect(ok.out).toMatch(/Protocol\s*: TLSv1\.2/);
    expect(ok.out).toContain("Verify return code: 0 (ok)");
    for (const old of ["-tls1_1", "-tls1"]) {
      const r = await handshake(old);
      expect(r.out + r.err).toMatch(/alert protocol version|no protocols available|unsupported protocol/);
      expect(r.out).toMatch(/Cipher is \(NONE\)/);
    }
  });
});

describe("mTLS: --tls-client-ca", () => {
  let server: BinaryServer;
  beforeAll(async () => {
    server = await startBinary(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.ca]);
  }, 120_000);
  afterAll(async () => { expect(await server.stop()).toBe(0); });

  test("a client with a certificate from the CA is served (and still needs its API key)", async () => {
    expect(server.log()).toContain('"mtls":true');
    const good = ["--cert", pki.clientCert, "--key", pki.clientKey];
    const r = await curl(`${httpsBase(server)}/v1/chat/completions`, good, server.key, chat);
    expect(r.out).toMatch(/^HTTP\/[\d.]+ 200/);
    const noKey = await curl(`${httpsBase(server)}/v1/models`, good);
    expect(noKey.out).toMatch(/^HTTP\/[\d.]+ 401/);
  });

  test("status, which has no client certificate, reports the server up from its TLS handshake and says so", async () => {
    const r = await status(server, { tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.ca });
    expect(r.out).toContain(`health:    ok (${httpsBase(server)}/health; the server requires a client certificate (mTLS)`);
    expect(r.code).toBe(0);
  });

  // A fix-attack run: any TLS server asking for a client certificate counted as up, mTLS config or not.
  test("a foreign TLS server that asks for a client certificate is up only for an mTLS config", async () => {
    const port = await new Promise<number>((resolve) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); }); });
    const foreign = Bun.spawn(["openssl", "s_server", "-accept", `127.0.0.1:${port}`, "-cert", pki.serverCert, "-key", pki.serverKey, "-Verify", "1", "-CAfile", pki.ca, "-www", "-quiet"],
      { stdout: "ignore", stderr: "ignore" });
    try {
      const fake = { ...server, baseURL: `http://127.0.0.1:${port}` };
      await until(async () => ((await sh(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-CAfile", pki.ca], "")).out.includes("BEGIN CERTIFICATE") || undefined));
      const plain = await status(fake, { tlsCert: pki.serverCert, tlsKey: pki.serverKey });
      expect(plain.code).toBe(1);
      expect(plain.out).not.toContain("health:    ok");
      const mtls = await status(fake, { tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.ca });
      expect(mtls.out).toContain("the server requires a client certificate (mTLS)"); // what status can tell without one
    } finally {
      foreign.kill();
      await foreign.exited;
    }
  });

  test("a client without a certificate is refused in the handshake (TLS 1.3 and 1.2)", async () => {
    const r13 = await curl(`${httpsBase(server)}/health`, []);
    expect(r13.code).not.toBe(0);
    expect(r13.out).toBe("");
    expect(r13.err).toMatch(/certificate required|alert/);
    const r12 = await curl(`${httpsBase(server)}/health`, ["--tls-max", "1.2"]);
    expect(r12.code).not.toBe(0);
    expect(r12.out).toBe("");
    expect(r12.err).toMatch(/handshake failure|alert/);
  });

  test("a certificate from another CA never gets an HTTP answer, every time", async () => {
    const rogue = ["--cert", pki.rogueCert, "--key", pki.rogueKey];
    for (let i = 0; i < 10; i++) {
      const r = await curl(`${httpsBase(server)}/health`, i % 2 ? rogue : [...rogue, "--tls-max", "1.2"]);
      expect(r.code).not.toBe(0);
      expect(r.out).toBe("");
    }
    const ok = await curl(`${httpsBase(server)}/health`, ["--cert", pki.clientCert, "--key", pki.clientKey]);
    expect(ok.out).toMatch(/^HTTP\/[\d.]+ 200/); // the server is still up and serving good clients
  });

  // What a wrong-CA client sees, byte by byte (openssl s_client -msg), sending a request once the handshake is up.
  // Bun (1.4.5) verifies the client certificate after the handshake, not inside it, in both versions: the server
  // sends its Finished (and TLS 1.3 session tickets) and closes with a close_notify alert, whether or not the
  // client's request got out first. No alert names the certificate; no HTTP byte comes back.
  for (const [flag, version] of [["-tls1_2", "1.2"], ["-tls1_3", "1.3"]] as const) {
    test(`a wrong-CA client over TLS ${version}: handshake completes, then close_notify and not one HTTP byte`, async () => {
      const port = new URL(server.baseURL).port;
      const r = await sh(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, flag, "-CAfile", pki.ca, "-cert", pki.rogueCert, "-key", pki.rogueKey,
        "-msg", "-ign_eof"], "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      const records = r.out.split("\n").filter((l) => /^(<<<|>>>) TLS/.test(l) && !/RecordHeader|InnerContent/.test(l));
      const serverFinished = records.findIndex((l) => l.startsWith("<<<") && l.endsWith("Finished"));
      const clientFinished = records.findIndex((l) => l.startsWith(">>>") && l.endsWith("Finished"));
      expect(serverFinished).toBeGreaterThan(-1); // the handshake completed
      expect(clientFinished).toBeGreaterThan(-1);
      const after = records.slice(Math.max(serverFinished, clientFinished) + 1).filter((l) => l.startsWith("<<<"));
      // Everything the server sent after the handshake: session tickets, then close_notify, nothing else.
      expect(after.filter((l) => !l.endsWith("NewSessionTicket"))).toEqual([expect.stringMatching(/^<<< TLS 1\.[23], Alert \[length 0002\], warning close_notify$/)]);
      expect(r.out).not.toContain("HTTP/1.1");
    });
  }

  test("a session ticket from a wrong-CA connection resumes to the same refusal (TLS 1.2 and 1.3)", async () => {
    const port = new URL(server.baseURL).port;
    for (const flag of ["-tls1_2", "-tls1_3"]) {
      const sess = path.join(pki.dir, `rogue${flag}.sess`);
      const sc = (args: string[]) => sh(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, flag, "-CAfile", pki.ca, "-ign_eof", ...args],
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      const first = await sc(["-cert", pki.rogueCert, "-key", pki.rogueKey, "-sess_out", sess]);
      expect(first.out).not.toContain("HTTP/1.1");
      expect(fs.existsSync(sess)).toBe(true);
      const resumed = await sc(["-sess_in", sess]);
      expect(resumed.out).toMatch(/^Reused, TLSv1\.[23]/m); // the ticket was taken: this is a resumption
      expect(resumed.out).not.toContain("HTTP/1.1");
    }
  });

  test("serve with --tls-cert and no --tls-key exits 2 naming tlsKey", async () => {
    const bin = path.join(path.dirname(server.stateDir), "appliance");
    const r = await sh([bin, "serve", "--state-dir", server.stateDir, "--port", "0", "--threads", "1", "--tls-cert", pki.serverCert]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("tlsKey");
  }, 120_000);
});
