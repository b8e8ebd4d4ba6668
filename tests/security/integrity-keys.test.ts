/**
 * The keys file against a local attacker and against itself (issue 10, item 4): concurrent CLI
 * changes never lose one another, a chmod on a running server's file is noticed, and a symlinked
 * keys.json is refused (by the server and by verify).
 */
import { afterAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { KeyStore, keysFilePath } from "../../src/guards/keys";
import { checkFiles } from "../../src/integrity/verify";
import { layout } from "../../src/service/layout";
import { tmpDir } from "../helpers";

const root = path.join(import.meta.dir, "..", "..");
const dirs: string[] = [];
const dir = () => { const d = tmpDir("appliance-keys-"); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

test("a `keys revoke` racing a `keys create` is never lost: the second writer waits for the first one's lock", async () => {
  const stateDir = dir();
  const file = keysFilePath(stateDir);
  const { key: victim } = new KeyStore(file).create({ name: "victim" });
  let child: ReturnType<typeof Bun.spawn> | undefined;
  const errFile = path.join(stateDir, "revoke.stderr"), outFile = path.join(stateDir, "revoke.stdout");
  // The create below reads the file, then — before it writes — a real CLI `keys revoke` runs in another process.
  // Without the lock the revoke completes in between and the create's write brings the victim back (the issue's
  // "revoked, exit 0, key still answers 200"). With it, the revoke must wait: it says so on stderr, we continue.
  const store = new KeyStore(file, Date.now, undefined, {
    beforeWrite: () => {
      child = Bun.spawn([process.execPath, path.join(root, "src", "main.ts"), "keys", "revoke", "victim", "--state-dir", stateDir],
        { stdout: Bun.file(outFile), stderr: Bun.file(errFile) });
      // Synchronous wait (we are inside the locked section) until the child has finished (no lock: the bug) or says
      // it waits for our lock. Polled with a deadline; each poll blocks 20 ms on a futex, it does not spin.
      const deadline = Date.now() + 60_000;
      const gate = new Int32Array(new SharedArrayBuffer(4));
      const has = (f: string, s: string) => fs.existsSync(f) && fs.readFileSync(f, "utf8").includes(s);
      while (!has(errFile, "waiting for") && !has(outFile, "revoked") && Date.now() < deadline) Atomics.wait(gate, 0, 0, 20);
    },
  });
  store.create({ name: "newcomer" });
  expect(child).toBeDefined();
  const code = await child!.exited;
  expect(fs.readFileSync(errFile, "utf8")).toContain("waiting for");
  expect(code).toBe(0);
  expect(fs.readFileSync(outFile, "utf8")).toBe("revoked victim\n");
  const after = new KeyStore(file);
  expect(after.verify(victim)).toBeUndefined(); // the revoke held
  expect(after.list().map((r) => r.name).sort()).toEqual(["newcomer", "victim"]);
});

test("chmod 644 on a running server's keys file is noticed at once (mode is part of the reload stamp)", () => {
  const stateDir = dir();
  const warnings: string[] = [];
  const store = new KeyStore(keysFilePath(stateDir), Date.now, (m) => warnings.push(m));
  const { key } = store.create({ name: "k" });
  expect(store.verify(key)).toBeDefined();
  fs.chmodSync(keysFilePath(stateDir), 0o644); // mtime, size and inode all unchanged
  expect(store.verify(key)).toBeUndefined();
  expect(warnings.join("\n")).toMatch(/readable by group or others/);
  fs.chmodSync(keysFilePath(stateDir), 0o600);
  expect(store.verify(key)).toBeDefined();
});

test("a symlinked keys.json pointing at a rogue admin key is refused by the server and by verify", () => {
  const stateDir = dir();
  const rogueDir = dir();
  const { key: rogue } = new KeyStore(path.join(rogueDir, "rogue.json")).create({ name: "rogue", scopes: ["admin"] });
  fs.symlinkSync(path.join(rogueDir, "rogue.json"), keysFilePath(stateDir));
  expect(() => new KeyStore(keysFilePath(stateDir))).toThrow(/symbolic link/);
  const warnings: string[] = [];
  const running = new KeyStore(path.join(dir(), "keys.json"), Date.now, (m) => warnings.push(m));
  fs.symlinkSync(path.join(rogueDir, "rogue.json"), running.file);
  expect(running.verify(rogue)).toBeUndefined();
  expect(warnings.join("\n")).toMatch(/symbolic link/);
  const check = checkFiles(parseConfig({ stateDir } as Record<string, unknown>));
  expect(check.status).toBe("fail");
  expect(check.detail).toMatch(/symbolic link/);
});

// Operator run (live service): with config.json root:root 0600 the service could not start (EACCES, exit 2) while
// `appliance verify` printed "all checks passed": the files check now says the service cannot read it.
test.skipIf(process.getuid?.() !== 0)("verify's files check fails a config file the service account cannot read, and passes one it can (root: chown)", () => {
  const root = dir();
  const l = layout("systemd", root);
  fs.mkdirSync(path.join(root, "etc"), { recursive: true });
  fs.writeFileSync(path.join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nappliance:x:4242:4242::/nonexistent:/usr/sbin/nologin\n");
  fs.writeFileSync(path.join(root, "etc/group"), "root:x:0:\nappliance:x:4242:\n");
  fs.mkdirSync(path.dirname(l.configFile), { recursive: true });
  fs.writeFileSync(l.configFile, "{}\n", { mode: 0o600 });
  fs.chownSync(l.configFile, 0, 0);
  const config = parseConfig({ stateDir: dir() } as Record<string, unknown>);
  const bad = checkFiles(config, l);
  expect(bad.status).toBe("fail");
  expect(bad.detail).toContain(`${l.configFile} is not readable by appliance`);
  fs.chownSync(l.configFile, 0, 4242);
  fs.chmodSync(l.configFile, 0o640);
  expect(checkFiles(config, l).detail).not.toContain("not readable");
  // Review: readable through a supplementary group too; and the directory must let the account in.
  fs.writeFileSync(path.join(root, "etc/group"), "root:x:0:\nappliance:x:4242:\nconf:x:4343:appliance\n");
  fs.chownSync(l.configFile, 0, 4343);
  expect(checkFiles(config, l).detail).not.toContain("not readable");
  fs.chownSync(path.dirname(l.configFile), 0, 0);
  fs.chmodSync(path.dirname(l.configFile), 0o700);
  expect(checkFiles(config, l).detail).toContain(`${path.dirname(l.configFile)} cannot be entered by appliance`);
});
