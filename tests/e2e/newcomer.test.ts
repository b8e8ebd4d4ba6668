/**
 * What a newcomer run of the README met (helper run, stop 43): the demo's Ctrl-C, and `uninstall` run by the
 * installed binary itself. The compiled binary throughout; the demo script as `npx bun run demo` runs it.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tmpDir, untilListening } from "../helpers";

const root = path.resolve(import.meta.dir, "../..");

test("demo: one Ctrl-C (the terminal signals the whole foreground group) reaches the server once: it drains, no 'second signal'", async () => {
  const dir = tmpDir("appliance-demo-");
  // detached: the demo leads a process group of its own, as a shell's foreground job does; the group is signalled.
  const demo = Bun.spawn([process.execPath, path.join(root, "scripts", "demo.ts")], {
    cwd: dir, stdout: "pipe", stderr: "pipe", detached: true,
    env: { ...process.env, DEMO_DIR: dir, PORT: "0", APPLIANCE_BINARY: await builtBinary() },
  });
  try {
    const { port, log, errLog } = await untilListening(demo, "demo");
    const key = /API key \(shown once\):\s+(\S+)/.exec(log())![1]!;
    // An answer in flight when Ctrl-C comes: the drain lets it finish; a second signal would cut it at once.
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "demo", messages: [{ role: "user", content: "hi" }], max_tokens: 200, stream: true }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let body = new TextDecoder().decode((await reader.read()).value);
    process.kill(-demo.pid, "SIGINT");
    for (;;) { const { value, done } = await reader.read(); if (done) break; body += new TextDecoder().decode(value); }
    expect(await demo.exited).toBe(0);
    expect(body.trimEnd().endsWith("data: [DONE]")).toBe(true);
    const text = log();
    expect(text.match(/"msg":"shutting down"/g)?.length).toBe(1);
    expect(text).not.toContain("second signal");
    expect(text).not.toContain("grace period over");
    // The first run's `keys list` finds no keys file: the demo does not print that as if something were wrong.
    expect(errLog()).not.toContain("no keys file");
  } finally {
    if (demo.exitCode === null) process.kill(-demo.pid, "SIGKILL");
  }
}, 60_000);

test("uninstall run by the installed binary (it removes itself) says to purge with the binary installed from", async () => {
  const dir = tmpDir("appliance-self-uninstall-");
  const bin = path.join(dir, "appliance");
  fs.copyFileSync(await builtBinary(), bin);
  fs.chmodSync(bin, 0o755);
  const staged = path.join(dir, "root");
  const run = (exe: string, args: string[]) => {
    const r = Bun.spawnSync([exe, ...args], { cwd: dir, env: { PATH: "/usr/bin:/bin", HOME: dir } });
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  };
  const install = run(bin, ["install", "--root", staged, "--platform", "systemd"]);
  expect(install.code).toBe(0);
  expect(install.out).toContain("keys create --name app --scopes chat,models");
  const installed = path.join(staged, "usr/local/bin/appliance");
  expect(fs.existsSync(installed)).toBe(true);
  const un = run(installed, ["uninstall", "--root", staged, "--platform", "systemd"]);
  expect(un.code).toBe(0);
  expect(fs.existsSync(installed)).toBe(false);
  expect(un.out).toContain("--purge removes them (run by the binary you installed from, e.g. ./appliance uninstall --purge");
  expect(un.out).toContain(`${installed} was removed`);
  // The binary installed from still has it: the message's command works.
  const purge = run(bin, ["uninstall", "--root", staged, "--platform", "systemd", "--purge"]);
  expect(purge.code).toBe(0);
  expect(fs.existsSync(path.join(staged, "var/lib/appliance"))).toBe(false);
}, 60_000);
