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
import { keptPageProbe, renderUnits } from "../../src/service/units";
import { hugePagesCheaper, parseFaultCost } from "../../src/util/fault-probe";
import { readThpMode, reportsFreePages } from "../../src/util/huge-pages";

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
  const line = /^Environment=GLIBC_TUNABLES=glibc\.malloc\.hugetlb=([01])(?: APPLIANCE_PAGE_PROBE=(\S+))?$/m.exec(unit);
  expect(line).not.toBeNull();
  const thpOn = process.platform === "linux" && ["always", "madvise"].includes(readThpMode() ?? "");
  if (thpOn && reportsFreePages()) {
    // Measured at install: the figures stand beside the tunable (serve logs them), and the choice follows them.
    const cost = parseFaultCost(line![2]);
    expect(cost).toBeDefined();
    expect(line![1]).toBe(hugePagesCheaper(cost) ? "1" : "0");
  } else {
    expect(line![1]).toBe(thpOn ? "1" : "0");
    expect(line![2]).toBeUndefined(); // not measured
  }
  const rendered = (huge: boolean) => renderUnits(layout("systemd", "/"), parseConfig({}), 0, huge)["/etc/systemd/system/appliance.service"];
  expect(rendered(true)).toContain("Environment=GLIBC_TUNABLES=glibc.malloc.hugetlb=1\n");
  expect(rendered(false)).toContain("Environment=GLIBC_TUNABLES=glibc.malloc.hugetlb=0\n");
  expect(renderUnits(layout("systemd", "/"), parseConfig({}), 0, true, { hugeMs: 0.25, smallMs: 6 })["/etc/systemd/system/appliance.service"])
    .toContain("Environment=GLIBC_TUNABLES=glibc.malloc.hugetlb=1 APPLIANCE_PAGE_PROBE=huge=0.250,small=6.000\n");
  // A second install that makes the same choice keeps the installed line's figures (its own measurement differs a little).
  const installed = "[Service]\nEnvironment=GLIBC_TUNABLES=glibc.malloc.hugetlb=1 APPLIANCE_PAGE_PROBE=huge=0.250,small=6.000\n";
  expect(keptPageProbe(installed, true)).toEqual({ hugeMs: 0.25, smallMs: 6 });
  expect(keptPageProbe(installed, false)).toBeUndefined(); // the choice changed: the new figures go in
  expect(keptPageProbe("Environment=GLIBC_TUNABLES=glibc.malloc.hugetlb=1\n", true)).toBeUndefined(); // nothing measured then
  expect(keptPageProbe(undefined, true)).toBeUndefined();
});
