/**
 * `serve` re-executes itself with glibc.malloc.hugetlb=1 (src/util/huge-pages.ts) so llama.cpp's KV cache faults in
 * huge pages: the decision (on a VM that reports freed memory to its host, only where huge pages measure cheaper:
 * util/fault-probe.ts), and the compiled binary doing it
 * (same process, tunable set, the KV cache in AnonHugePages), or leaving an operator's own setting alone.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { HUGETLB_TUNABLE, hugePageEnv, hugePagesHere, PAGE_PROBE, readThpMode, reexecPays, REEXEC_MARK, reportsFreePages, smallPagesHere } from "../../src/util/huge-pages";
import { formatFaultCost, hugePagesCheaper, measureFaultCost, parseFaultCost } from "../../src/util/fault-probe";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";


describe("hugePageEnv", () => {
  test("adds the tunable (after any others) and the re-exec mark on Linux with THP", () => {
    expect(hugePageEnv({ PATH: "/bin", X: undefined }, "linux", () => "madvise", () => false)).toEqual({ PATH: "/bin", GLIBC_TUNABLES: HUGETLB_TUNABLE, [REEXEC_MARK]: "1" });
    expect(hugePageEnv({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2" }, "linux", () => "always", () => false)!.GLIBC_TUNABLES)
      .toBe(`glibc.malloc.arena_max=2:${HUGETLB_TUNABLE}`);
  });

  test("nothing to do: the operator set hugetlb (even to 0), already re-executed, THP never/absent, not Linux", () => {
    expect(hugePageEnv({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=0" }, "linux", () => "madvise", () => false)).toBeNull();
    expect(hugePageEnv({ GLIBC_TUNABLES: "a=1:glibc.malloc.hugetlb=2" }, "linux", () => "madvise", () => false)).toBeNull();
    // Never measured in the re-executed process, or where the tunable is set (the unit).
    const measured = () => { throw new Error("measured"); };
    expect(hugePageEnv({ [REEXEC_MARK]: "1" }, "linux", () => "madvise", measured)).toBeNull();
    expect(hugePageEnv({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" }, "linux", () => "madvise", measured)).toBeNull();
    expect(hugePageEnv({}, "linux", () => "never", () => false)).toBeNull();
    expect(hugePageEnv({}, "linux", () => undefined, () => false)).toBeNull();
    expect(hugePageEnv({}, "darwin", () => "madvise", () => false)).toBeNull();
  });

  test("nothing to do where 4 KiB pages are the better choice; asked only when all else says re-execute (it may measure)", () => {
    expect(hugePageEnv({}, "linux", () => "madvise", () => true)).toBeNull();
    expect(hugePageEnv({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=0" }, "linux", () => "madvise", () => { throw new Error("read"); })).toBeNull();
    expect(hugePageEnv({}, "linux", () => "never", () => { throw new Error("read"); })).toBeNull();
  });

  test("4 KiB pages only on a machine that reports freed memory to its hypervisor and where huge pages do not measure cheaper", () => {
    const never = () => { throw new Error("measured"); };
    expect(smallPagesHere(() => false, never)).toBe(false); // no reporting: huge pages, nothing measured
    // The two hosts of fault-probe.ts: a huge page ~30x cheaper per byte than its 4 KiB faults, and ~4x dearer.
    expect(smallPagesHere(() => true, () => ({ hugeMs: 0.2, smallMs: 5.8 }))).toBe(false);
    expect(smallPagesHere(() => true, () => ({ hugeMs: 4, smallMs: 1 }))).toBe(true);
    expect(smallPagesHere(() => true, () => ({ hugeMs: 3.5, smallMs: 5.7 }))).toBe(false); // the second host's dear mode: still cheaper
    expect(smallPagesHere(() => true, () => ({ hugeMs: 1.5, smallMs: 1.4 }))).toBe(true);
    expect(smallPagesHere(() => true, () => undefined)).toBe(true); // not measurable: 4 KiB pages, as before
    expect(hugePagesCheaper(undefined)).toBe(false);
  });

  // Glibc Linux with THP (where the tunable means something): elsewhere it returns undefined, and 4 KiB pages stay.
  const glibcThp = process.platform === "linux" && ["always", "madvise"].includes(readThpMode() ?? "") && Bun.spawnSync(["getconf", "GNU_LIBC_VERSION"]).exitCode === 0;
  test.if(glibcThp)("measureFaultCost times both page sizes on this machine; the environment carries it", () => {
    const cost = measureFaultCost();
    expect(cost).toBeDefined();
    for (const ms of [cost!.hugeMs, cost!.smallMs]) { expect(Number.isFinite(ms)).toBe(true); expect(ms).toBeGreaterThan(0); }
    const text = formatFaultCost(cost!);
    expect(text).toMatch(/^huge=\d+\.\d{3},small=\d+\.\d{3}$/);
    expect(formatFaultCost(parseFaultCost(text)!)).toBe(text);
    for (const bad of ["huge=1", "huge=1.2.3,small=4", "huge=NaN,small=1"]) expect(parseFaultCost(bad)).toBeUndefined();
  });

  test("reportsFreePages reads the balloon device's feature bit 5 (VIRTIO_BALLOON_F_REPORTING)", () => {
    const dir = tmpDir();
    const device = (name: string, features: string) => {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(path.join(dir, name, "features"), `${features}\n`);
    };
    expect(reportsFreePages(path.join(dir, "missing"))).toBe(false); // no balloon driver
    fs.mkdirSync(path.join(dir, "module")); // the driver dir's other entries are not devices
    device("virtio0", "0110100000000000"); // bit 0 first: stats (1), deflate on OOM (2), page poison (4); no reporting (5)
    expect(reportsFreePages(dir)).toBe(false);
    device("virtio3", "0110010000000000"); // a second device, with reporting
    expect(reportsFreePages(dir)).toBe(true);
  });

  test("hugePagesHere: off outside Linux", () => {
    expect(hugePagesHere("darwin")).toBe(false);
  });

  test("readThpMode reads the bracketed mode", () => {
    const file = path.join(tmpDir(), "enabled");
    fs.writeFileSync(file, "always [madvise] never\n");
    expect(readThpMode(file)).toBe("madvise");
    expect(readThpMode(path.join(path.dirname(file), "missing"))).toBeUndefined();
  });

  test("a direct start re-executes for the tunable only where THP is madvise: under always the kernel needs no mark", () => {
    expect(reexecPays("madvise")).toBe(true);
    expect(reexecPays("always")).toBe(false);
  });

  test("the operator's hugetlb setting is decided on without reading the THP mode", () => {
    expect(hugePageEnv({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" }, "linux", () => { throw new Error("read"); }, () => { throw new Error("read"); })).toBeNull();
  });
});

/**
 * Starts the compiled binary's serve on the tiny model; returns its process (the pid Bun spawned) once listening.
 * `wrap`: a command it is started through, which execs it (same pid).
 */
async function serve(extraEnv: Record<string, string> = {}, wrap: string[] = []) {
  const dir = tmpDir("appliance-thp-");
  const bin = await builtBinary();
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const model = path.join(dir, "tiny.gguf");
  fs.copyFileSync(await tinyModel({ ctx: 131072 }), model);
  const add = Bun.spawnSync([bin, "models", "add", model, "--state-dir", path.join(dir, "state")], { env });
  expect(add.exitCode).toBe(0);
  const proc = Bun.spawn([...wrap, bin, "serve", "--state-dir", path.join(dir, "state"), "--port", "0", "--no-auth", "--threads", "1", "--parallel", "1", "--ctx-size", "131072"],
    { env: { ...env, ...extraEnv }, stdout: "pipe", stderr: "pipe" });
  const { log } = await untilListening(proc, "serve");
  const environ = Object.fromEntries(fs.readFileSync(`/proc/${proc.pid}/environ`, "utf8").split("\0").filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
  const hugeKb = Number(/AnonHugePages:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
  // What the start measured, where it measured (the `memory pages measured` line).
  const measured = log().split("\n").filter((l) => l.includes('"msg":"memory pages measured"')).map((l) => JSON.parse(l));
  return { environ, hugeKb, measured };
}

const THP_FILE = "/sys/kernel/mm/transparent_hugepage/enabled";
const thp = readThpMode(THP_FILE);
const BALLOON = "/sys/bus/virtio/drivers/virtio_balloon";
/**
 * Where this machine reports freed memory to its hypervisor, serve is also started with the balloon driver's sysfs dir
 * hidden (an empty tmpfs over it, in a mount namespace of its own): the machine as one without reporting, so the
 * re-exec into huge pages is exercised here too.
 */
const hideBalloon = ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', BALLOON];
const reporting = reportsFreePages();
describe.if(process.platform === "linux")("compiled binary", () => {
  const reexecMode = thp === "madvise"; // where a direct start may re-execute (never: no THP; always: the kernel needs no mark)

  const inHugePages = async (wrap: string[], measured = false) => {
    const { environ, hugeKb, measured: lines } = await serve({}, wrap);
    expect(lines.length).toBe(measured ? 1 : 0);
    expect(environ.GLIBC_TUNABLES).toBe(HUGETLB_TUNABLE);
    expect(environ[REEXEC_MARK]).toBe("1");
    // The KV cache, 131,072 tokens x 2 layers x 64 x (K, V) x f16 = 64 MiB, is in huge pages. (Above glibc's largest
    // mmap threshold, 32 MiB, on purpose: a smaller buffer may come from an arena heap that glibc does not mark.)
    expect(hugeKb).toBeGreaterThanOrEqual(32 * 1024);
  };

  test(`serve runs as the process it was started as, with huge-page malloc when THP is madvise (here: ${thp}), unless the machine reports freed memory to its host (here: ${reporting}) and huge pages measure no cheaper there`, async () => {
    if (reexecMode && !reporting) return inHugePages([]);
    const { environ, measured } = await serve();
    if (!reexecMode) {
      expect(measured).toEqual([]);
      expect(environ.GLIBC_TUNABLES).toBeUndefined(); // no re-exec: 4 KiB pages (never), or huge pages without it (always)
      expect(environ[REEXEC_MARK]).toBeUndefined();
      return;
    }
    // Reporting: the start measured, logged what it found, and re-executed exactly when a huge page measured cheaper
    // (where the measurement cannot be taken, nothing is logged and it stays in 4 KiB pages).
    if (measured.length === 0) {
      expect(measureFaultCost()).toBeUndefined();
      expect(environ[REEXEC_MARK]).toBeUndefined();
      return;
    }
    expect(measured.length).toBe(1);
    expect(measured[0].measuredBy).toBe("this start");
    const { hugePage, smallPages } = measured[0].firstTouch2MiBMs;
    expect(hugePage).toBeGreaterThan(0);
    expect(smallPages).toBeGreaterThan(0);
    const huge = hugePagesCheaper({ hugeMs: hugePage, smallMs: smallPages });
    expect(measured[0].hugePages).toBe(huge);
    expect(environ.GLIBC_TUNABLES).toBe(huge ? HUGETLB_TUNABLE : undefined);
    expect(environ[REEXEC_MARK]).toBe(huge ? "1" : undefined);
    expect(environ[PAGE_PROBE]).toBe(huge ? formatFaultCost({ hugeMs: hugePage, smallMs: smallPages }) : undefined);
  }, 120_000);

  // Needs a mount namespace (root, and a runner that allows unshare): elsewhere the decision's unit tests above stand alone.
  const canUnshare = process.getuid?.() === 0 && Bun.spawnSync(["unshare", "--mount", "true"]).exitCode === 0;
  const canHide = reexecMode && reporting && canUnshare;
  test.if(canHide)("the same machine without its balloon device: the re-exec into huge pages", () => inHugePages(hideBalloon), 120_000);

  // This machine's THP mode read as `always` (a file saying so bound over the sysfs one, in a mount namespace of its own).
  test.if(canUnshare && fs.existsSync(THP_FILE))("where THP is always, no re-exec and no measurement: the kernel puts large allocations in huge pages unmarked", async () => {
    const dir = tmpDir("appliance-thp-always-");
    const fake = path.join(dir, "enabled");
    fs.writeFileSync(fake, "[always] madvise never\n");
    const asAlways = ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$0" "$1" && shift && exec "$@"', fake, THP_FILE];
    const { environ, measured } = await serve({}, asAlways);
    expect(environ[REEXEC_MARK]).toBeUndefined();
    expect(environ.GLIBC_TUNABLES).toBeUndefined();
    expect(measured).toEqual([]);
  }, 120_000);

  test("an APPLIANCE_PAGE_PROBE left in the environment is not logged as measured (only this start's or the unit's is)", async () => {
    // Where the start measures nothing (this machine with its balloon hidden, or one without reporting) nothing is logged.
    const { measured } = await serve({ [PAGE_PROBE]: "huge=9.000,small=1.000" }, canHide ? hideBalloon : []);
    expect(measured.length).toBe(!canHide && reexecMode && reporting && measureFaultCost() ? 1 : 0);
    for (const m of measured) expect(m.firstTouch2MiBMs).not.toEqual({ hugePage: 9, smallPages: 1 });
  }, 120_000);

  test("an operator's own glibc.malloc.hugetlb is left as it is (no re-exec)", async () => {
    const { environ } = await serve({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=0" });
    expect(environ.GLIBC_TUNABLES).toBe("glibc.malloc.hugetlb=0");
    expect(environ[REEXEC_MARK]).toBeUndefined();
  }, 120_000);
});
