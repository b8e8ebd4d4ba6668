/**
 * The build lays the binary's bytecode out by a recorded run of it (scripts/bytecode-order.ts, Bun's
 * compile.bytecodeOrder): the recording runs the binary as the service starts and answers, and its file goes to the
 * second Bun.build; without one (skipped, or the run failed) the binary is built unprofiled. A release records once
 * and builds every binary from that file (APPLIANCE_BYTECODE_ORDER_FILE), so its builds stay reproducible.
 */
import fs from "node:fs";
import { afterEach, expect, test } from "bun:test";
import path from "node:path";
import { bundleOptions } from "../../scripts/build";
import { bytecodeOrder } from "../../scripts/bytecode-order";
import { builtBinary, tmpDir } from "../helpers";

const VARS = ["APPLIANCE_BYTECODE_ORDER", "APPLIANCE_BYTECODE_ORDER_FILE"] as const;
const saved = VARS.map((v) => process.env[v]);
afterEach(() => VARS.forEach((v, i) => { if (saved[i] === undefined) delete process.env[v]; else process.env[v] = saved[i]; }));

test("a run of the built binary (models add, keys create, serve, /health, a chat) records the functions it used, kept where asked", async () => {
  delete process.env.APPLIANCE_BYTECODE_ORDER;
  const bin = await builtBinary(); // built (and recorded) first: the file below is this test's own recording
  const kept = path.join(tmpDir(), "serve.order");
  process.env.APPLIANCE_BYTECODE_ORDER_FILE = kept;
  const r = await bytecodeOrder(bin);
  if ("skip" in r) throw new Error(`no recording: ${r.skip}`);
  const lines = fs.readFileSync(r.file, "utf8").split("\n");
  expect(lines[0]).toBe("v2");
  expect(lines.filter((l) => /^F [0-9a-f]{16}$/.test(l)).length).toBeGreaterThan(1000);
  expect(fs.readFileSync(kept, "utf8")).toBe(lines.join("\n"));
  r.done(); // the recording's scratch dir
  expect(fs.existsSync(path.dirname(r.file))).toBe(false);
}, 120_000);

test("a kept file is used as it is, without running anything; APPLIANCE_BYTECODE_ORDER=0 skips it all", async () => {
  const kept = path.join(tmpDir(), "serve.order");
  fs.writeFileSync(kept, "v2\n");
  process.env.APPLIANCE_BYTECODE_ORDER_FILE = kept;
  expect(await bytecodeOrder("/nonexistent/appliance")).toMatchObject({ file: kept });
  process.env.APPLIANCE_BYTECODE_ORDER = "0";
  expect(await bytecodeOrder("/nonexistent/appliance")).toEqual({ skip: "APPLIANCE_BYTECODE_ORDER=0" });
});

test("a binary that cannot run gives no order, and says why", async () => {
  delete process.env.APPLIANCE_BYTECODE_ORDER;
  delete process.env.APPLIANCE_BYTECODE_ORDER_FILE;
  const r = await bytecodeOrder("/nonexistent/appliance");
  expect(r).toHaveProperty("skip");
});

test("the recorded file is what Bun.build lays the bytecode out by; without one, nothing", () => {
  const out = path.join(tmpDir(), "appliance");
  const compile = (order?: string) => (bundleOptions("linux-x64", out, null, null, order) as { compile: { bytecodeOrder?: string } }).compile;
  expect(compile("/tmp/x/serve.order").bytecodeOrder).toBe("/tmp/x/serve.order");
  expect(compile().bytecodeOrder).toBeUndefined();
});
