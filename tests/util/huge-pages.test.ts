/**
 * `serve` re-executes itself with glibc.malloc.hugetlb=1 (src/util/huge-pages.ts) so llama.cpp's KV cache faults in
 * huge pages: the decision, and the compiled binary doing it (same process, tunable set, the KV cache in
 * AnonHugePages), or leaving an operator's own setting alone.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { HUGETLB_TUNABLE, hugePageEnv, readThpMode, REEXEC_MARK } from "../../src/util/huge-pages";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";


describe("hugePageEnv", () => {
  test("adds the tunable (after any others) and the re-exec mark on Linux with THP", () => {
    expect(hugePageEnv({ PATH: "/bin", X: undefined }, "linux", () => "madvise")).toEqual({ PATH: "/bin", GLIBC_TUNABLES: HUGETLB_TUNABLE, [REEXEC_MARK]: "1" });
    expect(hugePageEnv({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2" }, "linux", () => "always")!.GLIBC_TUNABLES)
      .toBe(`glibc.malloc.arena_max=2:${HUGETLB_TUNABLE}`);
  });

  test("nothing to do: the operator set hugetlb (even to 0), already re-executed, THP never/absent, not Linux", () => {
    expect(hugePageEnv({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=0" }, "linux", () => "madvise")).toBeNull();
    expect(hugePageEnv({ GLIBC_TUNABLES: "a=1:glibc.malloc.hugetlb=2" }, "linux", () => "madvise")).toBeNull();
    expect(hugePageEnv({ [REEXEC_MARK]: "1" }, "linux", () => "madvise")).toBeNull();
    expect(hugePageEnv({}, "linux", () => "never")).toBeNull();
    expect(hugePageEnv({}, "linux", () => undefined)).toBeNull();
    expect(hugePageEnv({}, "darwin", () => "madvise")).toBeNull();
  });

  test("readThpMode reads the bracketed mode", () => {
    const file = path.join(tmpDir(), "enabled");
    fs.writeFileSync(file, "always [madvise] never\n");
    expect(readThpMode(file)).toBe("madvise");
    expect(readThpMode(path.join(path.dirname(file), "missing"))).toBeUndefined();
  });

  test("the operator's hugetlb setting is decided on without reading the THP mode", () => {
    expect(hugePageEnv({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" }, "linux", () => { throw new Error("read"); })).toBeNull();
  });
});

/** Starts the compiled binary's serve on the tiny model; returns its process (the pid Bun spawned) once listening. */
async function serve(extraEnv: Record<string, string> = {}) {
  const dir = tmpDir("appliance-thp-");
  const bin = await builtBinary();
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const model = path.join(dir, "tiny.gguf");
  fs.copyFileSync(await tinyModel({ ctx: 131072 }), model);
  const add = Bun.spawnSync([bin, "models", "add", model, "--state-dir", path.join(dir, "state")], { env });
  expect(add.exitCode).toBe(0);
  const proc = Bun.spawn([bin, "serve", "--state-dir", path.join(dir, "state"), "--port", "0", "--no-auth", "--threads", "1", "--parallel", "1", "--ctx-size", "131072"],
    { env: { ...env, ...extraEnv }, stdout: "pipe", stderr: "pipe" });
  await untilListening(proc, "serve");
  const environ = Object.fromEntries(fs.readFileSync(`/proc/${proc.pid}/environ`, "utf8").split("\0").filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
  const hugeKb = Number(/AnonHugePages:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
  return { environ, hugeKb };
}

const thp = readThpMode();
describe.if(process.platform === "linux")("compiled binary", () => {
  const used = thp === "always" || thp === "madvise";

  test(`serve runs as the process it was started as, with huge-page malloc when THP is on (here: ${thp})`, async () => {
    const { environ, hugeKb } = await serve();
    expect(environ.GLIBC_TUNABLES).toBe(used ? HUGETLB_TUNABLE : undefined);
    expect(environ[REEXEC_MARK]).toBe(used ? "1" : undefined);
    // The KV cache, 131,072 tokens x 2 layers x 64 x (K, V) x f16 = 64 MiB, is in huge pages. (Above glibc's largest
    // mmap threshold, 32 MiB, on purpose: a smaller buffer may come from an arena heap that glibc does not mark.)
    if (used) expect(hugeKb).toBeGreaterThanOrEqual(32 * 1024);
  }, 120_000);

  test("an operator's own glibc.malloc.hugetlb is left as it is (no re-exec)", async () => {
    const { environ } = await serve({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=0" });
    expect(environ.GLIBC_TUNABLES).toBe("glibc.malloc.hugetlb=0");
    expect(environ[REEXEC_MARK]).toBeUndefined();
  }, 120_000);
});
