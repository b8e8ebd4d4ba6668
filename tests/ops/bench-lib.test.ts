/**
 * The benchmarks' server starter (scripts/bench-peer-lib.ts) against the compiled binary: a log file named again for a
 * second start (bench-peer's `default-N.log` once per model size) must give the second server's port. Bun writes a
 * child's stdout into an existing file from its start without truncating it, so the first server's "listening" line
 * was still further down, and the wait for /health polled a closed port until its 300 s timeout.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startAppliance } from "../../scripts/bench-peer-lib";
import { builtBinary, tinyModel, tmpDir } from "../helpers";

test("a second start with the same log file answers on its own port", async () => {
  const [bin, model] = await Promise.all([builtBinary(), tinyModel()]);
  const dir = tmpDir();
  const logFile = path.join(dir, "serve.log");
  const first = await startAppliance(bin, model, dir, 1, 1, { logFile });
  await first.stop();
  const second = await startAppliance(bin, model, dir, 1, 1, { logFile });
  try {
    expect(second.base).not.toBe(first.base);
    expect((await fetch(`${second.base}/health`)).status).toBe(200);
    // The log is the second server's alone: one "listening" line.
    expect(fs.readFileSync(logFile, "utf8").split("\n").filter((l) => l.includes('"msg":"listening"'))).toHaveLength(1);
  } finally { await second.stop(); }
}, 60_000);
