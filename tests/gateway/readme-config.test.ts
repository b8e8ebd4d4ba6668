/** The README's worked gateway config (Scaling out) is a valid config, and means what the text says. */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { UpstreamPool } from "../../src/gateway/pool";
import { makePki } from "../ops/certs";

test("the README's two-upstream TOML parses; llama-3-70b has both upstreams, bge-m3 one; keys come from the file and the variable", () => {
  const readme = fs.readFileSync(path.join(import.meta.dir, "..", "..", "README.md"), "utf8");
  const start = readme.indexOf("# /etc/appliance/config.toml");
  expect(start).toBeGreaterThan(0);
  const toml = readme.slice(start, readme.indexOf("```", start));
  const config = parseConfig(Bun.TOML.parse(toml) as Record<string, unknown>);
  expect(config.rateLimit.store).toBe("redis");
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "appliance-readme-"));
  try {
    const keyFile = path.join(dir, "gpu-1.key");
    fs.writeFileSync(keyFile, "k1\n");
    // The second upstream's TLS files, made here (the README's paths, read at start, are not on this machine).
    const pki = makePki(fs.mkdtempSync(path.join(dir, "pki-")));
    const tls = { tlsCa: pki.ca, tlsCert: pki.clientCert, tlsKey: pki.clientKey };
    const upstreams = config.upstreams.map((u) => (u.apiKeyFile ? { ...u, apiKeyFile: keyFile } : { ...u, ...tls }));
    const pool = new UpstreamPool({ ...config, upstreams }, Date.now, { GPU2_KEY: "k2" });
    expect(pool.models()).toEqual(["llama-3-70b", "bge-m3"]);
    expect(pool.candidates("llama-3-70b").map((u) => u.headers().authorization)).toEqual(["Bearer k1", "Bearer k2"]);
    expect(pool.candidates("bge-m3").map((u) => u.base)).toEqual(["https://10.0.0.12:8443/v1"]);
    expect(pool.candidates("bge-m3")[0]!.tls).toEqual({ ca: fs.readFileSync(pki.ca, "utf8"), cert: fs.readFileSync(pki.clientCert, "utf8"), key: fs.readFileSync(pki.clientKey, "utf8") });
    expect(pool.candidates("llama-3-70b")[0]!.tls).toBeUndefined();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
