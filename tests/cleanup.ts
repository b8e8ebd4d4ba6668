/** Preloaded by bunfig.toml: after the whole run, remove every temp dir the tests made through tmpDir. */
import { afterAll } from "bun:test";
import fs from "node:fs";
import { madeTmpDirs } from "./helpers";

afterAll(() => {
  for (const dir of madeTmpDirs) fs.rmSync(dir, { recursive: true, force: true });
});
