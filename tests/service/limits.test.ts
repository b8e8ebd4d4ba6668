/**
 * Resource limits in the unit: measured on this machine at install unless a flag gives them; every flag persisted.
 * And the huge-page tunable, which install also decides by the machine (util/huge-pages.ts).
 */
import { afterAll, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { builtBinary, tinyModel, tmpDir } from "../helpers";
import { parseConfig } from "../../src/config/load";
import { layout } from "../../src/service/layout";
import { renderUnits } from "../../src/service/units";
import { expectedHugePages } from "../util/expected-huge-pages";

const roots: string[] = [];
afterAll(() => { for (const r of roots) fs.rmSync(r, { recursive: true, force: true }); });

async function install(...flags: string[]) {
  const root = tmpDir("appliance-limits-");
  roots.push(root);
  const bin = await builtBinary();
  const r = Bun.spawnSync([bin, "install", "--root", root, "--platform", "systemd", "--model", await tinyModel(), "--binary", bin, ...flags], { stdout: "pipe", stderr: "pipe" });
  expect(r.stderr.toString()).toBe("");
  expect(r.exitCode).toBe(0);
  return {
    unit: fs.readFileSync(path.join(root, "etc/systemd/system/appliance.service"), "utf8"),
    config: JSON.parse(fs.readFileSync(path.join(root, "etc/appliance/config.json"), "utf8")),
  };
}

test("MemoryMax/CPUQuota default to 75% of this machine's memory and all its CPUs", async () => {
  const { unit, config } = await install();
  expect(unit).toContain(`MemoryMax=${Math.floor((os.totalmem() * 0.75) / 2 ** 20)}M\n`);
  expect(unit).toContain(`CPUQuota=${os.availableParallelism() * 100}%\n`);
  expect(config.memoryMax).toBeUndefined(); // measured at each install, not frozen into the config
});

test("--memory-max / --cpu-quota override and are persisted, with every other config flag", async () => {
  const { unit, config } = await install("--memory-max", "2G", "--cpu-quota", "150%", "--threads", "3", "--gpu", "off", "--no-auth", "--ctx-size", "2048");
  expect(unit).toContain("MemoryMax=2G\n");
  expect(unit).toContain("CPUQuota=150%\n");
  expect(config).toMatchObject({ memoryMax: "2G", cpuQuota: "150%", threads: 3, gpu: "off", auth: false, ctxSize: 2048 });
});

test("the unit's huge-page tunable is what this machine calls for: 1 with THP on, unless it reports freed memory to its host and huge pages measure no cheaper there", async () => {
  const { unit } = await install();
  const expected = expectedHugePages();
  expect(unit).toMatch(expected === undefined ? /Environment=GLIBC_TUNABLES=glibc\.malloc\.hugetlb=[01]\n/ : `Environment=GLIBC_TUNABLES=glibc.malloc.hugetlb=${expected ? 1 : 0}\n`);
  const rendered = (huge: boolean) => renderUnits(layout("systemd", "/"), parseConfig({}), 0, huge)["/etc/systemd/system/appliance.service"];
  expect(rendered(true)).toContain("Environment=GLIBC_TUNABLES=glibc.malloc.hugetlb=1\n");
  expect(rendered(false)).toContain("Environment=GLIBC_TUNABLES=glibc.malloc.hugetlb=0\n");
});
