/**
 * node-llama-cpp's GGUF insights as the compiled binary has them (scripts/build-nlc-trim.ts cpuModelEstimate; here the
 * patched source is written to a temp file importing the package's own modules and dependencies): on a CPU binding a
 * model's memory estimate comes from the formula, without the simulated load, and equals what the simulated load measures.
 */
import { afterAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { getLlama, readGgufFileInfo, type Llama } from "node-llama-cpp";
import { cpuModelEstimate } from "../../scripts/build-nlc-trim";
import { tinyModel, tmpDir } from "../helpers";

const insights = path.join(import.meta.dir, "..", "..", "node_modules", "node-llama-cpp", "dist", "gguf", "insights");
const patched = path.join(tmpDir(), "GgufInsights.mjs");
fs.writeFileSync(patched, cpuModelEstimate(fs.readFileSync(path.join(insights, "GgufInsights.js"), "utf8"))
  .replace(/from "([^"]+)"/g, (_m, spec: string) => `from ${JSON.stringify(Bun.resolveSync(spec, insights))}`));

type Estimate = { cpuRam: number; gpuVram: number };
type Insights = { estimateModelResourceRequirementsV2(o: { gpuLayers: number }): Promise<Estimate>; _exactModelResourceRequirementsCache: { keys(): Iterable<string> } };
type InsightsClass = { from(info: unknown, llama: Llama): Promise<Insights> };
const { GgufInsights: Patched } = await import(patched) as { GgufInsights: InsightsClass };
const { GgufInsights: Original } = await import(path.join(insights, "GgufInsights.js")) as { GgufInsights: InsightsClass };
const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false });
afterAll(() => llama.dispose());

test("on the CPU the patched estimate skips the simulated load and gives what the simulated load measures", async () => {
  const model = await tinyModel();
  const info = await readGgufFileInfo(model, { sourceType: "filesystem" });
  const original = await Original.from(info, llama), fast = await Patched.from(info, llama);
  const simulated = await original.estimateModelResourceRequirementsV2({ gpuLayers: 0 });
  expect([...original._exactModelResourceRequirementsCache.keys()]).toHaveLength(1); // the unpatched one did simulate: what the trim removes
  const formula = await fast.estimateModelResourceRequirementsV2({ gpuLayers: 0 });
  expect([...fast._exactModelResourceRequirementsCache.keys()]).toHaveLength(0);
  expect(formula).toEqual(simulated);
  expect(formula.cpuRam).toBeGreaterThan(fs.statSync(model).size * 0.9); // the tensors, mapped from the file
}, 60_000);

test("the patch goes in once, only for a binding without a GPU; a changed file stops the build", () => {
  const out = cpuModelEstimate(fs.readFileSync(path.join(insights, "GgufInsights.js"), "utf8"));
  expect(out.match(/if \(this\._llama\.gpu === false\) return null;/g)).toHaveLength(1);
  expect(() => cpuModelEstimate("export class GgufInsights {}")).toThrow(/GgufInsights\.js changed/);
});
