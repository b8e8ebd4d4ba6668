/**
 * `appliance update` and `rollback` against a live systemd, on an install with a
 * non-default port: a good binary is swapped in; one with another native-library
 * version brings its own libraries; a broken and a truncated one are refused
 * before the switch; a never-listening one is rolled back (and it says so); a full disk changes nothing.
 * A slow start (longer than the unit's own start timeout) during an update is tests/live/slow-start.test.ts:
 * update waits on systemd's start job (READY=1), which that test stretches with real hashing work.
 * /usr/local/bin is a small tmpfs here so the disk can really be filled.
 */
import { afterAll, describe, expect, test } from "bun:test";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel, tmpDir } from "../helpers";
import { active, curl, put, unitProp } from "./client";
import { bootOrSkip, type LiveSystemd } from "./systemd";

const live = await bootOrSkip("update.test.ts");
const scratch = tmpDir("appliance-update-");
afterAll(() => { fs.rmSync(scratch, { recursive: true, force: true }); });

const T = 300_000;
const PORT = 9321;
const timings: Record<string, number> = {};
const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
const INSTALLED = "/usr/local/bin/appliance";

describe.skipIf(!live)("live systemd: update and rollback", () => {
  const sys = live!;
  let original = "";
  // Read inside the container: its /usr/local/bin is a tmpfs mounted in its own namespace.
  const installedSha = () => sys.exec(["sha256sum", INSTALLED]).out.split(" ")[0] ?? "";
  const update = (file: string, digest = sha(path.join(sys.root, file.slice(1)))) => {
    const t0 = performance.now();
    const r = sys.exec([INSTALLED, "update", "--binary", file, "--sha256", digest], { timeoutMs: T });
    return { ...r, ms: performance.now() - t0 };
  };
  const healthy = () => curl(sys, `http://127.0.0.1:${PORT}/health`).status === 200;

  test("install --port on a small /usr/local/bin", async () => {
    const bin = await builtBinary();
    const size = fs.statSync(bin).size;
    // Room for three binaries: installed + previous + one staged copy.
    expect(sys.exec(["mount", "-t", "tmpfs", "-o", `size=${Math.ceil((3 * size + 8e6) / 4096) * 4096}`, "tmpfs", "/usr/local/bin"]).code).toBe(0);
    const r = sys.exec([put(sys, bin, "appliance"), "install", "--port", String(PORT), "--model", put(sys, await tinyModel(), "tiny.gguf", 0o644)], { timeoutMs: T });
    expect(r.code).toBe(0);
    original = installedSha();
    expect(healthy()).toBe(true);
  }, T);

  test("a good binary: swapped in and healthy on the installed port", async () => {
    const next = path.join(scratch, "appliance-next");
    fs.copyFileSync(await builtBinary(), next);
    fs.appendFileSync(next, Buffer.alloc(64)); // a different, still working binary
    const r = update(put(sys, next, "appliance-next"));
    timings.updateGood = r.ms;
    expect(r.out).toContain("update complete");
    expect(r.code).toBe(0);
    expect(installedSha()).toBe(sha(next));
    expect(active(sys)).toBe("active");
    expect(healthy()).toBe(true);
    const back = sys.exec([INSTALLED, "rollback"], { timeoutMs: T });
    expect(back.out).toContain("rollback complete");
    expect(installedSha()).toBe(original);
    expect(healthy()).toBe(true);
  }, T);

  test("a binary with another native-library version: it installs its own libraries before the switch; rollback and the next update keep exactly the dirs the two binaries need", async () => {
    const NATIVE = "/usr/local/lib/appliance/native";
    const dirs = () => sys.exec(["ls", NATIVE]).out.trim().split("\n").filter(Boolean).sort();
    const [oldVersion] = dirs();
    expect(dirs()).toHaveLength(1);
    // Same code, another embedded bundle version: patch the version string's first character in the binary, in every
    // copy (the bundle's source text and, as the build compiles to bytecode, the compiled constant that runs).
    const bytes = Buffer.from(fs.readFileSync(await builtBinary()));
    const newVersion = (oldVersion!.startsWith("9") ? "8" : "9") + oldVersion!.slice(1);
    let copies = 0;
    for (let at = bytes.indexOf(oldVersion!); at >= 0; at = bytes.indexOf(oldVersion!, at + 1)) { bytes[at] = newVersion.charCodeAt(0); copies++; }
    expect(copies).toBeGreaterThan(0);
    const other = path.join(scratch, "appliance-other-native");
    fs.writeFileSync(other, bytes);
    const r = update(put(sys, other, "appliance-other-native"));
    expect(r.out).toContain("update complete");
    expect(r.code).toBe(0);
    expect(installedSha()).toBe(sha(other));
    expect(dirs()).toEqual([oldVersion!, newVersion].sort()); // the previous binary's libraries stay for a rollback
    const maps = sys.exec(["cat", `/proc/${unitProp(sys, "MainPID")}/maps`]).out;
    expect(maps).toContain(`${NATIVE}/${newVersion}/`);
    expect(maps).not.toContain(`${NATIVE}/${oldVersion}/`);
    // Root-owned and read-only, like install writes them.
    expect(sys.exec(["find", `${NATIVE}/${newVersion}`, "(", "-not", "-user", "root", "-o", "-perm", "/022", ")"]).out.trim()).toBe("");

    const back = sys.exec([INSTALLED, "rollback"], { timeoutMs: T });
    expect(back.out).toContain("rollback complete");
    expect(installedSha()).toBe(original);
    expect(dirs()).toEqual([oldVersion!, newVersion].sort()); // the replaced binary is now .previous
    expect(sys.exec(["cat", `/proc/${unitProp(sys, "MainPID")}/maps`]).out).toContain(`${NATIVE}/${oldVersion}/`);

    // The next update replaces .previous (the other-version binary): its libraries go.
    const next = path.join(scratch, "appliance-next2");
    fs.copyFileSync(await builtBinary(), next);
    fs.appendFileSync(next, Buffer.alloc(32));
    const again = update(put(sys, next, "appliance-next2"));
    expect(again.out).toContain("update complete");
    expect(again.out).toContain(`removed the native libraries of a binary no longer installed: ${NATIVE}/${newVersion}`);
    expect(dirs()).toEqual([oldVersion!]);
    expect(sys.exec([INSTALLED, "rollback"], { timeoutMs: T }).code).toBe(0);
    expect(installedSha()).toBe(original);
    expect(healthy()).toBe(true);
  }, T);

  test("a truncated binary and a broken one are refused before the switch (they cannot even install their libraries)", async () => {
    const truncated = path.join(scratch, "truncated");
    fs.writeFileSync(truncated, fs.readFileSync(await builtBinary()).subarray(0, 4 << 20));
    const broken = path.join(scratch, "broken");
    fs.writeFileSync(broken, "#!/bin/sh\nexit 1\n");
    for (const [name, file] of [["truncated", truncated], ["broken", broken]] as const) {
      const pid = unitProp(sys, "MainPID");
      const r = update(put(sys, file, name));
      timings[`refused_${name}`] = r.ms;
      expect(r.out).toContain("update refused before changing anything");
      expect(r.code).toBe(1);
      expect(unitProp(sys, "MainPID")).toBe(pid); // never restarted
      expect(sys.exec(["ls", "/usr/local/bin"]).out.trim().split("\n").sort()).toEqual(["appliance", "appliance.previous"]);
      expect(installedSha()).toBe(original);
      expect(healthy()).toBe(true);
    }
    expect(sys.exec([INSTALLED, "verify", "--quiet"]).code).toBe(0); // the recorded digest is the old binary's again
  }, T);

  test("a binary that never listens is rolled back at the start timeout", async () => {
    const src = path.join(scratch, "never.ts");
    // It passes the pre-switch step (answers `install --native-only` as a build without embedded libraries does).
    fs.writeFileSync(src, 'if (process.argv[2] === "serve") setInterval(() => {}, 1 << 30); else if (process.argv[2] === "install") console.log("native: none");\n');
    const out = path.join(scratch, "never");
    const b = Bun.spawnSync([process.execPath, "build", "--compile", src, "--outfile", out], { stderr: "pipe" });
    expect(b.exitCode).toBe(0);
    // A short start timeout keeps the test quick; the mechanism is the installed one (Type=notify + TimeoutStartSec).
    fs.mkdirSync(path.join(sys.root, "etc/systemd/system/appliance.service.d"), { recursive: true });
    fs.writeFileSync(path.join(sys.root, "etc/systemd/system/appliance.service.d/timeout.conf"), "[Service]\nTimeoutStartSec=15s\n");
    sys.exec(["systemctl", "daemon-reload"]);
    try {
      const r = update(put(sys, out, "never"));
      timings.rollbackNeverListens = r.ms;
      expect(r.out).toContain("rolling back");
      expect(r.out).toContain("rolled back to the previous binary; it is healthy");
      expect(installedSha()).toBe(original);
      // Both names are now the one binary: a rollback has nothing to go back to, and says so (it said "swapped back"
      // and left two temporary hard links of the binary in /usr/local/bin that uninstall --purge kept; live-service run).
      const listing = () => sys.exec(["ls", "-A", "/usr/local/bin"]).out.trim().split("\n").sort();
      expect(listing()).toEqual(["appliance", "appliance.previous"]);
      const back = sys.exec([INSTALLED, "rollback"], { timeoutMs: T });
      expect([back.code, back.out]).toEqual([1, expect.stringContaining("nothing to go back to")]);
      expect(listing()).toEqual(["appliance", "appliance.previous"]);
      expect(installedSha()).toBe(original);
    } finally {
      fs.rmSync(path.join(sys.root, "etc/systemd/system/appliance.service.d"), { recursive: true, force: true });
      sys.exec(["systemctl", "daemon-reload"]);
    }
  }, T);

  test("disk full during update: nothing half-done, the old binary intact and running", async () => {
    const next = path.join(scratch, "appliance-full");
    fs.copyFileSync(await builtBinary(), next);
    fs.appendFileSync(next, Buffer.alloc(256));
    const file = put(sys, next, "appliance-full");
    const listing = () => sys.exec(["ls", "-lA", "--time-style=full-iso", "/usr/local/bin"]).out;
    const free = Number(sys.exec(["df", "--output=avail", "-B1", "/usr/local/bin"]).out.trim().split("\n")[1]);
    expect(sys.exec(["fallocate", "-l", String(free - 8_000_000), "/usr/local/bin/.filler"]).code).toBe(0);
    const before = listing();
    const pid = unitProp(sys, "MainPID");
    const r = update(file);
    expect(r.out).toContain("update failed before changing anything");
    expect(r.code).toBe(1);
    expect(listing()).toBe(before);
    expect(installedSha()).toBe(original);
    expect(unitProp(sys, "MainPID")).toBe(pid);
    expect(healthy()).toBe(true);
    sys.exec(["rm", "-f", "/usr/local/bin/.filler"]);
  }, T);
});

afterAll(() => {
  if (live) console.log(`live update timings (ms): ${Object.entries(timings).map(([k, v]) => `${k}=${Math.round(v)}`).join(" ")}`);
});
