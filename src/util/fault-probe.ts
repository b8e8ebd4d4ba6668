/**
 * What first touching fresh memory costs on this machine right now: one 2 MiB transparent huge page against 4 KiB
 * pages, for the huge-page decision on a virtual machine that reports freed memory to its host (util/huge-pages.ts).
 * There the answer depends on how the host backs memory it took back, and it differs between hosts: on one, a
 * reported block touched as a huge page cost ~4× its 4 KiB faults (the 155 M model started in 276 ms with huge pages
 * and 143 ms without); on another (Firecracker, 2026-12-06, scripts/bench-cold.ts --size 155) a 4 KiB fault costs
 * ~11 µs and a huge page 0.15-0.7 ms, or 2.7-4.7 ms some moments after memory was freed: the context phase (the KV
 * cache's first touch) took 55-87 ms in huge pages against 429-447 ms in 4 KiB pages, and 208-215 against 283-291 ms
 * with 1 GiB freed by another process 2.5 s before. So it is measured, not assumed.
 *
 * The pages are mapped, touched with libc's memset and unmapped through bun:ffi (JavaScript's own allocations do
 * not go through glibc's malloc, which is what the tunable changes): 3 × 256 KiB in 4 KiB pages and 3 × one 2 MiB
 * huge page, alternated, each in a mapping of its own kept until the end (an unmapped page would be handed straight
 * back to the next sample, from the kernel's per-CPU lists, never reported to the host), the median of each.
 * ~6 ms in all here (bun:ffi ~2 ms, the touches the rest). Glibc on x86-64 or arm64 Linux only (the tunable is glibc's).
 */
export interface FaultCost {
  /** Milliseconds to first-touch 2 MiB as one huge page (madvise MADV_HUGEPAGE, 2 MiB-aligned). */
  hugeMs: number;
  /** Milliseconds to first-touch 2 MiB in 4 KiB pages (scaled from 256 KiB). */
  smallMs: number;
}

const MIB2 = 2n << 20n, SMALL = 256n << 10n, SAMPLES = 3;
const PROT_RW = 3, MAP_PRIVATE_ANON = 0x22, MADV_HUGEPAGE = 14;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** The measurement, or undefined where it cannot be taken (not Linux, no bun:ffi or glibc, a map or madvise refused). */
export function measureFaultCost(): FaultCost | undefined {
  if (process.platform !== "linux") return undefined;
  let libc;
  try {
    const { dlopen } = require("bun:ffi") as typeof import("bun:ffi");
    libc = dlopen("libc.so.6", {
      mmap: { args: ["u64", "u64", "i32", "i32", "i32", "u64"], returns: "u64" },
      munmap: { args: ["u64", "u64"], returns: "i32" },
      madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
      memset: { args: ["u64", "i32", "u64"], returns: "u64" },
    });
  } catch {
    return undefined;
  }
  const c = libc.symbols;
  const mapped: [bigint, bigint][] = [];
  /** ms to touch `bytes` of a fresh mapping; huge: a 2 MiB-aligned block marked for huge pages. */
  const touch = (bytes: bigint, huge: boolean): number => {
    const size = huge ? bytes + MIB2 : bytes; // room to align the block
    const raw = BigInt(c.mmap(0n, size, PROT_RW, MAP_PRIVATE_ANON, -1, 0n));
    if (raw === 0n || raw === 0xffffffffffffffffn) throw new Error("mmap"); // MAP_FAILED
    mapped.push([raw, size]);
    const at = huge ? (raw + MIB2 - 1n) & ~(MIB2 - 1n) : raw;
    if (huge && c.madvise(at, bytes, MADV_HUGEPAGE) !== 0) throw new Error("madvise");
    const t0 = performance.now();
    c.memset(at, 1, bytes);
    return performance.now() - t0;
  };
  try {
    const small: number[] = [], huge: number[] = [];
    for (let i = 0; i < SAMPLES; i++) { small.push(touch(SMALL, false) * Number(MIB2 / SMALL)); huge.push(touch(MIB2, true)); }
    return { hugeMs: median(huge), smallMs: median(small) };
  } catch {
    return undefined;
  } finally {
    for (const [at, size] of mapped) c.munmap(at, size);
    libc.close();
  }
}

/**
 * Huge pages cheaper than 4 KiB pages for the same bytes. Not by a margin: on the second host above a huge page costs
 * either ~0.2 ms or, some moments after memory was freed, 2.7-4.7 ms, against 5.5-7.7 ms in 4 KiB pages every time
 * (a repo-less probe loop around bench-cold's churn), so even the dear mode is the cheaper one; the first host's 4×
 * dearer huge pages are far on the other side. Where the two are about equal, either choice costs about the same.
 */
export const hugePagesCheaper = (cost: FaultCost | undefined): boolean => cost !== undefined && cost.hugeMs < cost.smallMs;

/** The measurement as the environment carries it (APPLIANCE_PAGE_PROBE: huge-pages.ts), and back. */
export const formatFaultCost = (c: FaultCost): string => `huge=${c.hugeMs.toFixed(3)},small=${c.smallMs.toFixed(3)}`;
export function parseFaultCost(s: string | undefined): FaultCost | undefined {
  const m = /^huge=(\d+(?:\.\d+)?),small=(\d+(?:\.\d+)?)$/.exec(s ?? "");
  return m ? { hugeMs: Number(m[1]), smallMs: Number(m[2]) } : undefined;
}
