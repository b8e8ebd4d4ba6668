/**
 * A serve whose state dir's native-library lock (<stateDir>/native.lock, engine/native.ts) is held by another process
 * waits for it, and says so in its log: a start stalled behind a stopped or hung `models add` used to print nothing.
 * `models add`'s trial run waits for it too, says so on stderr, and that wait is not counted against its load limit.
 * The compiled binary, as users run it; the lock held by this test process (flock, as the other process would).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { holdFileLock } from "../../src/util/file-lock";
import { MANIFEST } from "../../src/integrity/manifest";
import { builtBinary, tinyModel, tmpDir } from "../helpers";

let bin: string, model: string;
const running = new Set<Bun.Subprocess>();
beforeAll(async () => { bin = await builtBinary(); model = await tinyModel(); }, 600_000);
afterAll(() => { for (const p of running) p.kill("SIGKILL"); });

test("serve waits for the native-library lock another process holds, logs that it waits, and starts once it is released", async () => {
  const home = tmpDir(), stateDir = path.join(home, "state");
  const env = { PATH: "/usr/bin:/bin", HOME: home };
  const added = Bun.spawnSync([bin, "models", "add", model, "--state-dir", stateDir], { env });
  expect(added.exitCode).toBe(0);
  const lock = holdFileLock(path.join(stateDir, "native"));
  expect(lock).toBeDefined();
  const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0"], { env, stdout: "pipe", stderr: "pipe" });
  running.add(proc);
  const reader = proc.stdout.getReader(), decoder = new TextDecoder();
  let text = "", released = false, linesBeforeRelease = "";
  while (!text.includes('"msg":"listening"')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve exited: ${text}${await new Response(proc.stderr).text()}`);
    text += decoder.decode(value, { stream: true });
    if (!released && text.includes("waiting for another appliance process")) {
      linesBeforeRelease = text;
      lock!.release();
      released = true;
    }
  }
  expect(released).toBe(true);
  const waiting = linesBeforeRelease.split("\n").find((l) => l.includes("waiting for another appliance process"))!;
  expect(JSON.parse(waiting)).toMatchObject({ level: 40, lock: path.join(stateDir, "native.lock") });
  expect(linesBeforeRelease).not.toContain("native libraries verified"); // it did wait: nothing past the lock before
  expect(text).toContain("native libraries verified");
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
  fs.rmSync(home, { recursive: true, force: true });
}, 120_000);

test("models add waits for the native-library lock another process holds, says so on stderr, and adds the model once it is released", async () => {
  const home = tmpDir(), stateDir = path.join(home, "state");
  fs.mkdirSync(stateDir, { mode: 0o700 });
  const lock = holdFileLock(path.join(stateDir, "native")); // as a serve starting on this state dir would
  expect(lock).toBeDefined();
  const proc = Bun.spawn([bin, "models", "add", model, "--state-dir", stateDir], { env: { PATH: "/usr/bin:/bin", HOME: home }, stdout: "pipe", stderr: "pipe" });
  running.add(proc);
  const reader = proc.stderr.getReader(), decoder = new TextDecoder();
  let err = "";
  while (!err.includes("waiting for another appliance process")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`models add ended without saying it waits (exit ${await proc.exited}): ${err}`);
    err += decoder.decode(value, { stream: true });
  }
  expect(err).toContain(path.join(stateDir, "native.lock"));
  expect(fs.existsSync(path.join(stateDir, "models", MANIFEST))).toBe(false); // it did wait: nothing added before the release
  lock!.release();
  for (;;) { const { value, done } = await reader.read(); if (done) break; err += decoder.decode(value, { stream: true }); }
  const code = await proc.exited;
  expect({ code, err }).toMatchObject({ code: 0 });
  expect(await new Response(proc.stdout).text()).toContain("added as model");
  fs.rmSync(home, { recursive: true, force: true });
}, 120_000);
