/**
 * The one step of `appliance update` that runs the new binary before the switch (install --native-only), with the
 * real runner on real scripts. Operations run: a new binary that hung there held update forever (no bound on the
 * child), and one killed by a signal was reported as "exited with code 1".
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { layout } from "../../src/service/layout";
import { prepareNativeOf } from "../../src/service/native-sync";
import { realRunner } from "../../src/service/platform";
import { tmpDir } from "../helpers";

const script = (body: string) => {
  const file = path.join(tmpDir(), "appliance-new");
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
};

test("a new binary that never finishes is stopped at the bound and refused, saying so", () => {
  const t0 = performance.now();
  const r = prepareNativeOf(script("echo unpacking; exec sleep 600"), layout("systemd", tmpDir()), realRunner, 500);
  expect(performance.now() - t0).toBeLessThan(30_000);
  expect(r.ok).toBe(false);
  expect((r as { reason: string }).reason).toMatch(/install --native-only was stopped after 0\.5 s without finishing: unpacking \| no answer after 1 s: killed$/);
});

test("one killed by a signal is reported as such, not as exit code 1", () => {
  const r = prepareNativeOf(script("kill -9 $$"), layout("systemd", tmpDir()), realRunner);
  expect(r.ok).toBe(false);
  expect((r as { reason: string }).reason).toMatch(/install --native-only exited with code 137: killed by SIGKILL$/);
});

// Fix-attack run: with the output on a pipe, a command that left a background child holding it was waited on until
// the bound (spawnSync read the pipe to its end), then reported as stopped, though it had answered and exited 0.
test("a new binary that answers and exits, leaving a background child, is taken at once", () => {
  const pidFile = path.join(tmpDir(), "child.pid");
  const t0 = performance.now();
  const r = prepareNativeOf(script(`sleep 30 & echo $! > ${pidFile}; echo 'native: none'; exit 0`), layout("systemd", tmpDir()), realRunner, 20_000);
  process.kill(Number(fs.readFileSync(pidFile, "utf8")), "SIGKILL"); // the child is not the runner's to stop: the test does
  expect(r).toEqual({ ok: true, dir: undefined });
  expect(performance.now() - t0).toBeLessThan(10_000);
});
