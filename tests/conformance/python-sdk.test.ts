/**
 * The official Python SDK against the compiled binary. CI's registries are npm
 * and Debian, so the SDK may be missing: then this leg is skipped LOUDLY (a
 * warning naming what to install), never failed. APPLIANCE_PYTHON picks the
 * interpreter (e.g. a venv with `pip install openai`).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import path from "node:path";
import { startBinary, type BinaryServer } from "./binary-server";

const python = process.env.APPLIANCE_PYTHON ?? "python3";
const probe = Bun.spawnSync([python, "-c", "import openai; print(openai.__version__)"], { stderr: "pipe" });
const available = probe.exitCode === 0;
if (!available) {
  console.warn(`\n*** SKIPPED: the Python SDK leg of the conformance suite: '${python} -c "import openai"' failed. ` +
    "Install it (pip install openai) or point APPLIANCE_PYTHON at an interpreter that has it. ***\n");
}

let server: BinaryServer | undefined;
beforeAll(async () => { if (available) server = await startBinary([], [["--rpm", "1"]]); });
afterAll(async () => { if (server) expect(await server.stop()).toBe(0); });

test.skipIf(!available)(`official Python SDK ${available ? probe.stdout.toString().trim() : ""}: chat, stream, echo, JSON, tools, embeddings, responses, errors`, async () => {
  const proc = Bun.spawn([python, path.join(import.meta.dir, "python_sdk.py"), server!.baseURL, server!.key, server!.keys[0]!], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect(err + out).not.toContain("Traceback");
  expect(code).toBe(0);
  expect(JSON.parse(out.trim().split("\n").at(-1)!)).toHaveLength(7);
});
