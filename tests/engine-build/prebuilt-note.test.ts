/**
 * install's note on the engine (issue 11 item 3): a Linux service that would run node-llama-cpp's prebuilt libraries
 * is told how to build its own engine; nothing is said where that is moot.
 */
import { afterAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { prebuiltEngineNote } from "../../src/engine/engine-select";
import type { NativeBundle } from "../../src/engine/native-assets";
import { tmpDir } from "../helpers";

const root = tmpDir("appliance-engine-note-");
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const prebuilt: NativeBundle = { version: "3.22.1-linux-x64", engine: { kind: "prebuilt" }, folders: [] };
const cfg = { use: "auto" as const, dir: "/usr/local/lib/appliance/engine" };

test("said on Linux for the prebuilt libraries with no engine built under the root; not where moot", () => {
  expect(prebuiltEngineNote(cfg, root, "linux", "3.22.1", prebuilt)).toContain("sudo appliance engine build");
  expect(prebuiltEngineNote(cfg, root, "darwin", "3.22.1", prebuilt)).toBeUndefined(); // Metal prebuilt: nothing to build
  expect(prebuiltEngineNote({ ...cfg, use: "embedded" }, root, "linux", "3.22.1", prebuilt)).toBeUndefined(); // the operator chose
  expect(prebuiltEngineNote(cfg, root, "linux", "3.22.1", { ...prebuilt, engine: { kind: "local", openmp: true } })).toBeUndefined(); // our own build embedded
  expect(prebuiltEngineNote(cfg, root, "linux", null, null)).toBeUndefined(); // from source
  const versionDir = path.join(root, cfg.dir, "3.22.1");
  fs.mkdirSync(path.join(versionDir, "linux-x64"), { recursive: true }); // an engine built under this root
  expect(prebuiltEngineNote(cfg, root, "linux", "3.22.1", prebuilt)).toBeUndefined();
});
