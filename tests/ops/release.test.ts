/**
 * `bun run release` for real: the binary built from the commit, SHA256SUMS checked with sha256sum,
 * the signature checked with openssl, the CycloneDX SBOM parsed, a second build compared. Then a
 * binary of the sources under test embedding the release key, installed under --root and updated: only signed
 * updates go in; signatures by openssl, wrong keys, altered sums and altered binaries are refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { layout } from "../../src/service/layout";
import { cannotBuild } from "../../scripts/release";
import { builtBinary, tinyModel, tmpDir } from "../helpers";
import { makePki } from "./certs";

const repo = path.resolve(import.meta.dir, "..", "..");
let dir: string, out: string, releaseKey: string, otherKey: string, log: string;

const sh = (cmd: string[], cwd = dir) => {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};
const sha = (f: string) => new Bun.CryptoHasher("sha256").update(fs.readFileSync(f)).digest("hex");

function newKey(name: string) {
  const key = path.join(dir, `${name}.key`);
  expect(sh(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key]).code).toBe(0);
  expect(sh(["openssl", "pkey", "-in", key, "-pubout", "-out", path.join(dir, `${name}.pub`)]).code).toBe(0);
  return key;
}

/** A release folder made by hand: the binary, SHA256SUMS and its signature made with the openssl CLI. */
function signedFolder(name: string, binary: Buffer, key: string, binaryName = "appliance-linux-x64") {
  const d = path.join(dir, name);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, binaryName), binary, { mode: 0o755 });
  fs.writeFileSync(path.join(d, "SHA256SUMS"), `${sha(path.join(d, binaryName))}  ${binaryName}\n`);
  const r = sh(["openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", "SHA256SUMS", "-out", "SHA256SUMS.sig"], d);
  expect(r.code).toBe(0);
  return d;
}

beforeAll(async () => {
  dir = tmpDir("appliance-release-");
  out = path.join(dir, "release");
  releaseKey = newKey("release");
  otherKey = newKey("other");
  const p = Bun.spawn([process.execPath, "run", "release", "--key", releaseKey, "--out", out, "--target", "linux-x64", "--check-reproducible"],
    { cwd: repo, stdout: "pipe", stderr: "pipe" });
  const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  log = stdout + stderr;
  if (code !== 0) throw new Error(`bun run release exited ${code}: ${log}`);
}, 600_000);
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

describe("bun run release", () => {
  test("SHA256SUMS lists every artefact and sha256sum -c agrees; openssl verifies the Ed25519 signature", () => {
    const sums = fs.readFileSync(path.join(out, "SHA256SUMS"), "utf8");
    expect(sums.trim().split("\n").map((l) => l.split("  ")[1])).toEqual(["appliance-linux-x64", "appliance.cdx.json", "release-key.pub"]);
    const check = sh(["sha256sum", "-c", "SHA256SUMS"], out);
    expect(check.code).toBe(0);
    const verify = sh(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", path.join(dir, "release.pub"), "-rawin", "-in", "SHA256SUMS", "-sigfile", "SHA256SUMS.sig"], out);
    expect(verify.out).toContain("Signature Verified Successfully");
    const wrong = sh(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", path.join(dir, "other.pub"), "-rawin", "-in", "SHA256SUMS", "-sigfile", "SHA256SUMS.sig"], out);
    expect(wrong.code).not.toBe(0);
    expect(fs.readFileSync(path.join(out, "release-key.pub"), "utf8")).toBe(fs.readFileSync(path.join(dir, "release.pub"), "utf8"));
  });

  test("the SBOM is CycloneDX JSON of the shipped dependencies, without the dev tools", () => {
    const bom = JSON.parse(fs.readFileSync(path.join(out, "appliance.cdx.json"), "utf8"));
    expect(bom.bomFormat).toBe("CycloneDX");
    expect(bom.metadata.component.name).toBe("appliance");
    const names = new Set((bom.components as { name: string; group?: string }[]).map((c) => (c.group ? `${c.group}/${c.name}` : c.name)));
    for (const dep of ["elysia", "node-llama-cpp", "pino", "zod", "@node-llama-cpp/linux-x64"]) expect(names).toContain(dep);
    // Dev-only tools are left out (typescript and @types/bun stay: npm counts them as peers of elysia and @elysiajs/openapi).
    for (const dev of ["openai", "@cyclonedx/cyclonedx-npm"]) expect(names).not.toContain(dev);
  });

  test("built from the commit, and a second build in another checkout has the same sha256", () => {
    expect(log).toMatch(/built appliance-linux-x64 from [0-9a-f]{12}/);
    expect(log).toContain("reproducible: linux-x64 built again in another checkout");
    expect(cannotBuild("darwin-arm64")).toMatch(/^cross-compiling to bun-darwin-arm64 needs Bun to download/);
    expect(cannotBuild("linux-x64")).toBeUndefined();
    const version = sh([path.join(out, "appliance-linux-x64"), "--version"]);
    expect(version.out).toMatch(/commit [0-9a-f]{7}/);
  });
});

describe("update of a binary that embeds the release key", () => {
  let root: string, bin: string, next: Buffer;
  const update = (args: string[], using = bin) => sh([using, "update", "--root", root, "--platform", "systemd", ...args]);
  beforeAll(async () => {
    // The sources under test (release builds the last commit), with the release key embedded the way release does it.
    bin = path.join(dir, "appliance-linux-x64");
    const built = Bun.spawnSync([process.execPath, path.join(repo, "scripts", "build.ts"), "--out", bin],
      { cwd: repo, stdout: "pipe", stderr: "pipe", env: { ...process.env, APPLIANCE_RELEASE_PUBKEY: fs.readFileSync(path.join(dir, "release.pub"), "utf8") } });
    if (built.exitCode !== 0) throw new Error(`build failed: ${built.stderr.toString()}`);
    root = tmpDir("appliance-release-root-");
    const r = sh([bin, "install", "--root", root, "--platform", "systemd", "--model", await tinyModel(), "--binary", bin]);
    if (r.code !== 0) throw new Error(`install failed: ${r.out}${r.err}`);
    next = Buffer.concat([fs.readFileSync(bin), Buffer.alloc(16)]); // a different, still working binary
  }, 300_000);
  afterAll(() => { fs.rmSync(root, { recursive: true, force: true }); });

  test("an unsigned update is refused, also with a correct --sha256", () => {
    const d = signedFolder("unsigned", next, releaseKey);
    const r = update(["--binary", path.join(d, "appliance-linux-x64"), "--sha256", sha(path.join(d, "appliance-linux-x64"))]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("installs only signed updates");
    expect(sha(layout("systemd", root).bin)).toBe(sha(bin));
  });

  test("wrong key, altered SHA256SUMS, a binary not listed, a binary changed after signing: all refused", () => {
    const l = layout("systemd", root);
    const wrong = signedFolder("wrong-key", next, otherKey);
    const r1 = update(["--binary", path.join(wrong, "appliance-linux-x64"), "--signature", path.join(wrong, "SHA256SUMS.sig")]);
    expect(r1.code).toBe(1);
    expect(r1.out).toContain("does not match");

    const altered = signedFolder("altered", next, releaseKey);
    fs.appendFileSync(path.join(altered, "SHA256SUMS"), `${"0".repeat(64)}  extra\n`);
    const r2 = update(["--binary", path.join(altered, "appliance-linux-x64"), "--signature", path.join(altered, "SHA256SUMS.sig")]);
    expect(r2.code).toBe(1);
    expect(r2.out).toContain("does not match");

    const other = signedFolder("not-listed", next, releaseKey, "something-else");
    fs.writeFileSync(path.join(other, "appliance-linux-x64"), next, { mode: 0o755 });
    const r3 = update(["--binary", path.join(other, "appliance-linux-x64"), "--signature", path.join(other, "SHA256SUMS.sig")]);
    expect(r3.code).toBe(1);
    expect(r3.out).toContain("not listed");

    const changed = signedFolder("changed", next, releaseKey);
    fs.appendFileSync(path.join(changed, "appliance-linux-x64"), "x");
    const r4 = update(["--binary", path.join(changed, "appliance-linux-x64"), "--signature", path.join(changed, "SHA256SUMS.sig")]);
    expect(r4.code).toBe(1);
    expect(r4.out).toContain("refusing");
    expect(sha(l.bin)).toBe(sha(bin)); // nothing was installed
  });

  test("a binary signed with the embedded release key (signature made by openssl) is installed", () => {
    const d = signedFolder("good", next, releaseKey);
    const r = update(["--binary", path.join(d, "appliance-linux-x64"), "--signature", path.join(d, "SHA256SUMS.sig")]);
    expect(r.out).toContain("signature good (the release key built into this binary)");
    expect(r.out).toContain("update complete");
    expect(r.code).toBe(0);
    expect(sha(layout("systemd", root).bin)).toBe(sha(path.join(d, "appliance-linux-x64")));
  }, 300_000);

  // An operator run: the health check after the swap asked http:// of a server that speaks only HTTPS (tlsCert), read
  // the reset as "did not come up" and rolled every update back; with tlsClientCa it has no client certificate to show.
  test("a TLS server (tlsCert; then mTLS, tlsClientCa) is checked over HTTPS, and one on host ::1 on ::1: updated, not rolled back", () => {
    const pki = makePki(tmpDir("appliance-release-pki-"));
    const l = layout("systemd", root);
    const config = fs.readFileSync(l.configFile, "utf8");
    try {
      // and (a fix-attack run) host ::1, which the smoke start probed at 127.0.0.1: every such update rolled back
      for (const [i, tls] of [{ tlsCert: pki.serverCert, tlsKey: pki.serverKey }, { tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.ca },
        { host: "::1" }].entries()) {
        fs.writeFileSync(l.configFile, JSON.stringify({ ...JSON.parse(config), ...tls }));
        const d = signedFolder(`tls-${i}`, Buffer.concat([next, Buffer.alloc(i + 1)]), releaseKey);
        const r = update(["--binary", path.join(d, "appliance-linux-x64"), "--signature", path.join(d, "SHA256SUMS.sig")]);
        expect(r.out).toContain("update complete");
        expect(r.out).not.toContain("rolling back");
        expect(r.code).toBe(0);
        expect(sha(l.bin)).toBe(sha(path.join(d, "appliance-linux-x64")));
      }
    } finally {
      fs.writeFileSync(l.configFile, config);
      fs.rmSync(pki.dir, { recursive: true, force: true });
    }
  }, 300_000);

  test("--pubkey names another key; a development binary (no embedded key) needs --pubkey for --signature", async () => {
    const d = signedFolder("other-key", next, otherKey);
    const dev = await builtBinary();
    const noKey = update(["--binary", path.join(d, "appliance-linux-x64"), "--signature", path.join(d, "SHA256SUMS.sig")], dev);
    expect(noKey.code).toBe(2);
    expect(noKey.err).toContain("--pubkey");
    const r = update(["--binary", path.join(d, "appliance-linux-x64"), "--signature", path.join(d, "SHA256SUMS.sig"), "--pubkey", path.join(dir, "other.pub")]);
    expect(r.out).toContain(`signature good (${path.join(dir, "other.pub")})`);
    expect(r.code).toBe(0);
  }, 300_000);
});
