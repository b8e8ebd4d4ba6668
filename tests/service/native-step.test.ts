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

// Fix-attack run, round 2: with no usable temp dir the runner threw (raw ENOENT) and update left its 160 MB staged copy
// behind; a child printing without end would have been read whole.
test("no usable temp dir: the runner falls back to pipes; a flood of output is cut to its tail", () => {
  const bin = script("echo 'native: none'"), where = layout("systemd", tmpDir());
  const tmp = process.env.TMPDIR;
  process.env.TMPDIR = "/nonexistent-appliance-tmp";
  try {
    expect(prepareNativeOf(bin, where, realRunner)).toEqual({ ok: true, dir: undefined });
  } finally { if (tmp === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = tmp; }
  const r = realRunner(["sh", "-c", "head -c 5000000 /dev/zero | tr '\\\\0' x; echo; echo last-line"]);
  expect(r.code).toBe(0);
  expect(r.out.length).toBeLessThanOrEqual(64 << 10);
  expect(r.out.trim().endsWith("last-line")).toBe(true);
});
