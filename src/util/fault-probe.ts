/**
 * What first touching fresh memory costs on this machine right now: one 2 MiB transparent huge page against 4 KiB
 * pages, for the huge-page decision on a virtual machine that reports freed memory to its host (util/huge-pages.ts).
 * There the answer depends on how the host backs memory it took back, and it differs between hosts: on one, a
 * reported block touched as a huge page cost ~4× its 4 KiB faults (the 155 M model started in 276 ms with huge pages
 * and 143 ms without); on another (Firecracker, 2026-12-06, scripts/bench-cold.ts) a 4 KiB fault costs ~11 µs and a
 * whole huge page ~0.2 ms, 30× less per byte (the same model's start: 212 against 543 ms, the context phase 38
 * against 317 ms). So it is measured, not assumed.
 *
 * The pages are mapped, touched with libc's memset and unmapped through bun:ffi (JavaScript's own allocations do
 * not go through glibc's malloc, which is what the tunable changes): 2 × 256 KiB in 4 KiB pages and 2 × one 2 MiB
 * huge page, alternated, the fastest of each kept. ~2 ms for bun:ffi, 1-6 ms for the touches.
 */
export interface FaultCost {
  /** Milliseconds to first-touch 2 MiB as one huge page (madvise MADV_HUGEPAGE, 2 MiB-aligned). */
  hugeMs: number;
  /** Milliseconds to first-touch 2 MiB in 4 KiB pages (scaled from 256 KiB). */
  smallMs: number;
}

const MIB2 = 2n << 20n, SMALL = 256n << 10n;
const PROT_RW = 3, MAP_PRIVATE_ANON = 0x22, MADV_HUGEPAGE = 14;

/** The measurement, or undefined where it cannot be taken (not Linux, no bun:ffi, a map refused). */
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
  /** ms to touch `bytes` of a fresh mapping; huge: a 2 MiB-aligned block marked for huge pages. */
  const touch = (bytes: bigint, huge: boolean): number | undefined => {
    const size = huge ? bytes + MIB2 : bytes; // room to align the block
    const raw = BigInt(c.mmap(0n, size, PROT_RW, MAP_PRIVATE_ANON, -1, 0n));
    if (raw === 0n || raw === 0xffffffffffffffffn) return undefined; // MAP_FAILED
    try {
      const at = huge ? (raw + MIB2 - 1n) & ~(MIB2 - 1n) : raw;
      if (huge && c.madvise(at, bytes, MADV_HUGEPAGE) !== 0) return undefined;
      const t0 = performance.now();
      c.memset(at, 1, bytes);
      return performance.now() - t0;
    } finally {
      c.munmap(raw, size);
    }
  };
  try {
    const small: number[] = [], huge: number[] = [];
    for (let i = 0; i < 2; i++) {
      const s = touch(SMALL, false), h = touch(MIB2, true);
      if (s === undefined || h === undefined) return undefined;
      small.push(s * Number(MIB2 / SMALL)); huge.push(h);
    }
    return { hugeMs: Math.min(...huge), smallMs: Math.min(...small) };
  } finally {
    libc.close();
  }
}

/** Huge pages clearly cheaper: half the 4 KiB pages' time or less (the hosts above differ by 4-30×, not by 2). */
export const hugePagesCheaper = (cost: FaultCost | undefined): boolean => cost !== undefined && cost.hugeMs * 2 < cost.smallMs;
