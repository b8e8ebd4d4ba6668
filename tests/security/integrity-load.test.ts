/**
 * The model that is loaded is the model that was hashed (issue 10, item 6): a file renamed over the
 * path after the manifest check is never what llama.cpp parses.
 */
import { afterAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import { LlamaEngine } from "../../src/engine/llama";
import { resolveModels } from "../../src/integrity/resolve";
import { main } from "../../src/main";
import { silentLogger } from "../../src/log/logger";
import { tinyModel, tmpDir } from "../helpers";

const stateDir = tmpDir();
afterAll(() => fs.rmSync(stateDir, { recursive: true, force: true }));

test("a model swapped between hash and load: the engine loads the hashed bytes, not the new file", async () => {
  expect(await main(["models", "add", await tinyModel(), "--name", "m", "--state-dir", stateDir])).toBe(0);
  const { models } = await resolveModels(parseConfig({ stateDir } as Record<string, unknown>));
  expect(models.map((m) => m.id)).toEqual(["m"]);
  // The swap: a file that would make llama.cpp fail (or worse) is renamed over the verified path.
  const installed = path.join(stateDir, "models", "m.gguf");
  const evil = path.join(stateDir, "models", "evil.tmp");
  fs.writeFileSync(evil, "GGUF but not really a model");
  fs.renameSync(evil, installed);
  const engine = await LlamaEngine.create({ models, threads: 1, ctxSize: 256, parallel: 1, maxQueue: 1, gpu: false, log: silentLogger() });
  try {
    expect(engine.models().map((m) => m.id)).toEqual(["m"]);
    expect(engine.models()[0]!.sizeBytes).toBe(fs.statSync(await tinyModel()).size); // the verified file's size, not the swapped one's
    expect(engine.countTokens("m", "hello world")).toBeGreaterThan(0);
  } finally {
    await engine.dispose();
  }
});
