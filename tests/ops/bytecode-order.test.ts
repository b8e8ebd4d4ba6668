/**
 * The build lays the binary's bytecode out by a recorded run of it (scripts/bytecode-order.ts, Bun's
 * compile.bytecodeOrder): the recording runs the binary as the service starts and answers, and its file goes to the
 * second Bun.build; without one (skipped, or the run failed) the binary is built unprofiled.
 */
import fs from "node:fs";
import { afterEach, expect, test } from "bun:test";
import path from "node:path";
import { bundleOptions } from "../../scripts/build";
import { recordBytecodeOrder } from "../../scripts/bytecode-order";
import { builtBinary, tmpDir } from "../helpers";

const saved = process.env.APPLIANCE_BYTECODE_ORDER;
afterEach(() => { if (saved === undefined) delete process.env.APPLIANCE_BYTECODE_ORDER; else process.env.APPLIANCE_BYTECODE_ORDER = saved; });

test("a run of the built binary (models add, keys create, serve, /health, a chat) records the functions it used", async () => {
  delete process.env.APPLIANCE_BYTECODE_ORDER;
  const r = await recordBytecodeOrder(await builtBinary(), tmpDir());
  expect(r).toHaveProperty("file");
  const lines = fs.readFileSync((r as { file: string }).file, "utf8").split("\n");
  expect(lines[0]).toBe("v2");
  expect(lines.filter((l) => /^F [0-9a-f]{16}$/.test(l)).length).toBeGreaterThan(1000);
}, 120_000);

test("APPLIANCE_BYTECODE_ORDER=0 skips the recording (a quicker build)", async () => {
  process.env.APPLIANCE_BYTECODE_ORDER = "0";
  expect(await recordBytecodeOrder("/nonexistent/appliance", tmpDir())).toEqual({ skip: "APPLIANCE_BYTECODE_ORDER=0" });
});

test("the recorded file is what Bun.build lays the bytecode out by; without one, nothing", () => {
  const out = path.join(tmpDir(), "appliance");
  const compile = (order?: string) => (bundleOptions("linux-x64", out, null, null, order) as { compile: { bytecodeOrder?: string } }).compile;
  expect(compile("/tmp/x/serve.order").bytecodeOrder).toBe("/tmp/x/serve.order");
  expect(compile().bytecodeOrder).toBeUndefined();
});
