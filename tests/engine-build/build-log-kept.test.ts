/**
 * `appliance engine build` failing for a reason it does not recognise (here: a C compiler that cannot compile, so
 * cmake's configure fails): the message carries the log's tail, and the whole log outlives the removed work dir,
 * kept 0600 in TMPDIR and named; nothing is installed. A failure it does recognise (engine-failure.ts) keeps none:
 * its message says everything (tests/engine-build/gpu-build-failure.test.ts). Runs the compiled binary, as root
 * where cmake and a build tool exist; otherwise skipped with a line.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { EXIT } from "../../src/cli/exit-codes";
import { builtBinary, tmpDir } from "../helpers";

const why = process.geteuid?.() !== 0 ? "it needs root" : !Bun.which("cmake") || !Bun.which("c++") || !(Bun.which("ninja") || Bun.which("make")) ? "cmake, c++ and ninja or make are needed" : null;
if (why) console.warn(`build-log-kept SKIPPED: ${why}`);

test.skipIf(why !== null)("an unrecognised failure: exit 1, the log's tail in the message, the whole log kept 0600 and named; nothing installed", async () => {
  const home = tmpDir("appliance-engine-log-");
  const tmp = path.join(home, "tmp");
  fs.mkdirSync(tmp);
  const engineDir = path.join(home, "engine");
  const p = Bun.spawn([await builtBinary(), "engine", "build"], { env: { PATH: process.env.PATH, HOME: home, TMPDIR: tmp, CC: "/bin/false", APPLIANCE_ENGINE__DIR: engineDir }, stdout: "pipe", stderr: "pipe" });
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  expect(code).toBe(EXIT.FAIL);
  expect(stderr).toContain("appliance engine build: engine configure failed (exit 1):");
  const kept = /the whole build log is kept in (\S+)/.exec(stderr)?.[1];
  expect(kept).toBeDefined();
  expect(path.dirname(kept!)).toBe(tmp);
  expect(fs.statSync(kept!).mode & 0o777).toBe(0o600);
  expect(fs.readFileSync(kept!, "utf8")).toContain("/bin/false");
  expect(fs.readdirSync(tmp)).toEqual([path.basename(kept!)]); // the work dir itself is gone
  expect(fs.existsSync(engineDir)).toBe(false);
}, 120_000);
