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
