/**
 * scripts/bench-gpu.ts (issue 11 item 8's check) runs where the GPU is: a machine with no Bun and no node_modules,
 * through the compiled binary itself (BUN_BE_BUN=1 ./appliance scripts/bench-gpu.ts). Here on the CPU (--gpu off,
 * the CPU peer's llama-bench) the whole path runs: a copy of scripts/ and src/ beside the binary and nothing else,
 * the model generated, the appliance started and measured against llama-bench, everything it made removed. The
 * figures mean nothing here; that it runs, and what it prints, is the check.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tmpDir } from "../helpers";
import { peerBuild } from "../../scripts/peer-build";

const peer = await peerBuild();
if ("skip" in peer) console.log(`!!! bench-gpu.test.ts SKIPPED: ${peer.skip}`);

test.skipIf("skip" in peer)("the compiled binary runs bench-gpu.ts from a bare copy of the scripts: model, appliance, llama-bench, a ratio; nothing left", async () => {
  const root = tmpDir("appliance-bench-gpu-run-"), tmp = path.join(root, "tmp");
  const repo = path.resolve(import.meta.dir, "../..");
  for (const d of ["scripts", "src"]) fs.cpSync(path.join(repo, d), path.join(root, d), { recursive: true });
  fs.copyFileSync(await builtBinary(), path.join(root, "appliance"));
  fs.chmodSync(path.join(root, "appliance"), 0o755);
  fs.mkdirSync(tmp);
  const p = Bun.spawn(["./appliance", "scripts/bench-gpu.ts", "--llama-bench", (peer as { llamaBench: string }).llamaBench, "--gpu", "off", "--size", "28", "--runs", "1", "--tokens", "8"],
    { cwd: root, env: { PATH: "/usr/bin:/bin", HOME: root, TMPDIR: tmp, BUN_BE_BUN: "1" }, stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  expect(err).toBe("");
  expect(code).toBe(0);
  expect(out).toMatch(/^model: 29 M params/m);
  expect(out).toMatch(/^appliance: backend cpu; \/health after \d+ ms$/m);
  expect(out).toMatch(/^llama-bench: backends CPU$/m);
  expect(out).toMatch(/^decode, 8 tokens, 1 stream \(tok\/s, median of 1 interleaved\): appliance \d+\.\d, llama-bench tg8 \d+\.\d, ratio \d+\.\d\d \(goal ≥ 0\.95\)/m);
  expect(fs.readdirSync(tmp)).toEqual([]);
  expect(fs.existsSync(path.join(root, "node_modules"))).toBe(false);
}, 180_000);
