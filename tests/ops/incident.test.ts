/**
 * `appliance incident snapshot` on the compiled binary next to a running server: the archive is
 * unpacked with tar and every file read: audit tail and its verification, key metadata without
 * digests, redacted config, verify/doctor results, the server's memory and thread stats, manifest
 * digests, and the .sha256 file checked with sha256sum. No secret may appear anywhere in it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { tmpDir } from "../helpers";

let server: BinaryServer, bin: string, work: string, pid: number;

const sh = (cmd: string[], cwd = work) => {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin", HOME: work } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};

/** The server's pid: the process whose command line is this test's copy of the binary running serve. */
function serverPid(binary: string): number {
  for (const p of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let cmd: string[];
    try { cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0"); } catch { continue; }
    if (cmd[0] === binary && cmd[1] === "serve") return Number(p);
  }
  throw new Error(`no process runs ${binary} serve`);
}

function snapshot(name: string, extra: string[] = []) {
  const out = path.join(work, `${name}.tar.gz`);
  const r = sh([bin, "incident", "snapshot", "--state-dir", server.stateDir, "--out", out, "--pid", String(pid),
    "--port", new URL(server.baseURL).port, ...extra]);
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  if (r.code === 0) expect(sh(["tar", "-xzf", out, "-C", dir]).code).toBe(0);
  const [folder] = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  const read = (f: string) => fs.readFileSync(path.join(dir, folder!, f), "utf8");
  return { r, out, read, files: () => fs.readdirSync(path.join(dir, folder!)), all: () => fs.readdirSync(path.join(dir, folder!)).map(read).join("\n") };
}

beforeAll(async () => {
  server = await startBinary();
  bin = path.join(path.dirname(server.stateDir), "appliance");
  pid = serverPid(bin);
  work = tmpDir("appliance-incident-");
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${server.baseURL}/v1/models`, { headers: { authorization: `Bearer ${server.key}` } });
    expect(r.status).toBe(200);
  }
  expect((await fetch(`${server.baseURL}/v1/models`, { headers: { authorization: "Bearer apk_0000000000000000_nope" } })).status).toBe(401);
}, 120_000);
afterAll(async () => {
  fs.rmSync(work, { recursive: true, force: true });
  expect(await server.stop()).toBe(0);
});

test("one archive with its sha256; every evidence file present, listed with its digest in the manifest", () => {
  const s = snapshot("one");
  expect(s.r.code).toBe(0);
  expect((fs.statSync(s.out).mode & 0o777).toString(8)).toBe("600");
  expect(s.r.out).toMatch(/sha256 [0-9a-f]{64}/);
  expect(sh(["sha256sum", "-c", `${path.basename(s.out)}.sha256`]).code).toBe(0);
  expect(s.files().sort()).toEqual(["audit-tail.jsonl", "audit-verify.json", "config.redacted.json", "doctor.json", "health.json",
    "keys.json", "manifest.json", "process.json", "start-memo.json", "verify.json"]);
  const manifest = JSON.parse(s.read("manifest.json"));
  for (const [f, digest] of Object.entries(manifest.files)) expect(new Bun.CryptoHasher("sha256").update(s.read(f)).digest("hex")).toBe(digest as string);
  expect(manifest.notes.join("\n")).toContain("journal: not an installed systemd service");
});

test("audit tail and a passing chain verification; key metadata without digests; redacted config; checks; process stats", () => {
  const s = snapshot("two", ["--audit-lines", "2"]);
  expect(s.r.code).toBe(0);
  const tail = s.read("audit-tail.jsonl").trim().split("\n").map((l) => JSON.parse(l));
  expect(tail).toHaveLength(2);
  expect(tail[1].seq).toBe(tail[0].seq + 1);
  const audit = JSON.parse(s.read("audit-verify.json"));
  expect(audit.ok).toBe(true);
  expect(audit.records).toBeGreaterThanOrEqual(4);
  const keys = JSON.parse(s.read("keys.json"));
  expect(keys.map((k: { name: string }) => k.name)).toContain("conformance");
  expect(Object.keys(keys[0])).not.toContain("hash");
  const config = JSON.parse(s.read("config.redacted.json")).config;
  expect(config.stateDir).toBe(server.stateDir);
  expect(JSON.parse(s.read("verify.json")).some((c: { name: string }) => c.name === "models")).toBe(true);
  expect(Array.isArray(JSON.parse(s.read("doctor.json")))).toBe(true);
  const proc = JSON.parse(s.read("process.json"));
  expect(proc.server.pid).toBe(pid);
  expect(proc.server.VmRSS).toMatch(/^\d+ kB$/);
  expect(Number(proc.server.Threads)).toBeGreaterThan(1);
  expect(proc.server.openFds).toBeGreaterThan(2);
  expect(JSON.parse(s.read("health.json")).status).toBe(200);
});

test("a server on another port than the config's: the note names the URL it tried, --port (in the usage) finds it", () => {
  expect(sh([bin, "incident", "--help"]).out).toContain("[--port N]");
  const s = snapshot("elsewhere", ["--port", "1"]); // the last --port wins: nothing listens on port 1
  expect(s.r.code).toBe(0);
  expect(s.r.out).toContain("not collected: health http://127.0.0.1:1/health");
  expect(s.files()).not.toContain("health.json");
});

test("nothing secret: not the API key, not its digest, not the audit MAC key", () => {
  const s = snapshot("three");
  const all = s.all();
  const keysFile = JSON.parse(fs.readFileSync(path.join(server.stateDir, "keys.json"), "utf8"));
  // apk_<id>_<base64url secret>: the secret itself may hold "_" (even start with it), so take everything after the id.
  const secret = server.key.split("_").slice(2).join("_");
  expect(secret.length).toBeGreaterThanOrEqual(43);
  expect(all).not.toContain(secret);
  for (const k of keysFile.keys) expect(all).not.toContain(k.hash);
  const macKey = fs.readFileSync(path.join(server.stateDir, "audit.key"));
  for (const form of [macKey.toString("hex"), macKey.toString("base64"), macKey.toString("utf8").trim()]) expect(all).not.toContain(form);
});

test("a tampered audit log is reported in the archive and on the terminal; an existing --out is never overwritten", () => {
  const file = path.join(server.stateDir, "audit.jsonl");
  const original = fs.readFileSync(file, "utf8");
  try {
    const lines = original.split("\n");
    lines[0] = lines[0]!.replace(/"status":\d+/, '"status":299');
    fs.writeFileSync(file, lines.join("\n"));
    const s = snapshot("four");
    expect(s.r.code).toBe(0);
    expect(s.r.out).toContain("audit chain does NOT verify");
    const audit = JSON.parse(s.read("audit-verify.json"));
    expect(audit).toMatchObject({ ok: false, line: 1 });
    const again = sh([bin, "incident", "snapshot", "--state-dir", server.stateDir, "--out", s.out]);
    expect(again.code).toBe(2);
    expect(again.err).toContain("never overwritten");
  } finally {
    fs.writeFileSync(file, original);
  }
});

test("right after a rotation (logrotate's copytruncate) the audit tail still holds the last records, from the rotated file too", async () => {
  const log = path.join(server.stateDir, "audit.jsonl");
  fs.copyFileSync(log, `${log}.1`);
  fs.truncateSync(log, 0);
  expect((await fetch(`${server.baseURL}/v1/models`, { headers: { authorization: `Bearer ${server.key}` } })).status).toBe(200);
  const s = snapshot("rotated", ["--audit-lines", "3"]);
  expect(s.r.code).toBe(0);
  const tail = s.read("audit-tail.jsonl").trim().split("\n").map((l) => JSON.parse(l) as { seq: number });
  expect(tail).toHaveLength(3);
  expect(tail[1]!.seq).toBeGreaterThan(tail[0]!.seq); // oldest first, across the two files
  expect(tail[2]!.seq).toBeGreaterThan(tail[1]!.seq);
  // The log itself holds fewer than 3 (this request and the snapshot's own /health): the rest came from the rotated file.
  expect(fs.readFileSync(log, "utf8").trim().split("\n").length).toBeLessThan(3);
});
