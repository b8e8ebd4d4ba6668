/**
 * The OpenMP settings the locally built engine (scripts/engine-build.ts) runs with, put into the C environment
 * before its libraries load: libgomp reads OMP_* / GOMP_* once, in its constructor, when dlopen maps it.
 *
 * Why these values (measured with `bun scripts/bench-engine.ts` and its --child mode, 28 M model, 2 threads on 2
 * CPUs): node-llama-cpp runs every llama_decode as async work on the runtime's thread pool, so more than one pool
 * thread becomes an OpenMP master and each gets its own team. libgomp then counts more threads than CPUs and
 * "throttles" its barrier spinning to 100 spins before a futex sleep, so the dozens of barriers inside every decode
 * step each pay a sleep and a wake-up: 2-thread decode ran at 183-215 tok/s against llama-bench's ~300.
 * OMP_WAIT_POLICY=active raises the throttled spin to 1,000 (252-271 tok/s); GOMP_SPINCOUNT bounds the spin of an
 * unthrottled team to ~0.3 ms (libgomp's "active" default is minutes of spinning, a core burnt while idle). CPU
 * time used in the second after a decode stayed 0-20 ms with these settings (default: 0 ms).
 *
 * OMP_PROC_BIND=close with OMP_PLACES=cores keeps each team thread on one core, next to its master: without it the
 * kernel moved the team's threads between the two cores and every barrier woke a migrated thread (23.6 vs 6.2
 * voluntary context switches per token). Measured with `bun scripts/bench-engine-built.ts --env …` (28 M, 2 threads,
 * built engine vs llama-server, two A/B pairs in swapped order, load 2.0-2.7): decode 0.93 / 1.00 with binding vs
 * 0.69 / 0.78 without, 2 streams 0.94 / 0.84 vs 0.57 / 0.69, 4 streams 0.82 / 0.65 vs 0.63 / 0.54; beside a `yes`
 * burner binding was as fast or faster (116 vs 116, 148 vs 126, 154 vs 124 tok/s). Side effect: libgomp binds the
 * thread that loads it (the JS thread) and each team's master to the first core of the allowed set (patched engine:
 * the JS thread and llama-decode on core 0, the team thread on core 1). Measured on 2 cores only; an operator's OMP_PROC_BIND=false (a unit's Environment=) turns it off.
 *
 * Since the decode-thread patch (engine-decode-thread.ts) one thread runs every decode, so an engine built with it has
 * one team; the binding still pays: patched, 28 M, 2 threads, one rotation (bench-engine-built --engine-dir-b …
 * --env-b OMP_PROC_BIND=close), bound vs unbound 2-thread decode 1.03 vs 0.91 of llama-server at load 2.0 and
 * 216.8 vs 93.5 tok/s at load 4-5 (other work running). Why unbound is still slower was not isolated (likely: the
 * JS thread works on the previous step's output while a step runs, and unbound it can share a core with a team thread).
 *
 * GOMP_SPINCOUNT=300000 (was 30000, ~0.3 ms): the JS between two decode steps (0.5-1 ms with 4 streams) outlasted the
 * shorter spin, so the team thread slept at every step and, unbound, waited ~0.2 ms for a core when the next step
 * woke it (perf sched: 270-377 wake-ups per 128 tokens; llama-server's team thread 9). Unbound, which is what the
 * installed unit gets, 28 M, bench-engine-built --env OMP_PROC_BIND=false --env-b GOMP_SPINCOUNT=300000: 2-thread
 * decode 1.03 / 1.03 vs 0.97 / 0.95 of llama-server (two rotations, order swapped, load 2.1-2.7), and beside a `yes`
 * burner 0.80 vs 0.34 (voluntary context switches per token 6.5 vs 61.5); bound it was no worse (1.01 vs 1.07 idle,
 * 1.91 vs 1.62 with the burner); 155 M unbound no change beyond noise. Cost: ~6 ms more CPU spun after a completion.
 *
 * Bun's `process.env.X = …` does not reach the C library's environment (getenv in native code does not see it;
 * checked), so the values are set with libc's setenv through bun:ffi. A value the operator already set (a unit's
 * Environment=, a shell export) is left alone.
 */
import { CString, dlopen, FFIType, type Pointer } from "bun:ffi";
import { allowedCpus } from "./thread-sources";

/** OpenMP variables set for an OpenMP engine when the environment does not already have them. */
export const OMP_DEFAULTS: Readonly<Record<string, string>> = {
  OMP_WAIT_POLICY: "active", GOMP_SPINCOUNT: "300000", OMP_PROC_BIND: "close", OMP_PLACES: "cores",
};

let libc: { setenv(k: Buffer, v: Buffer, overwrite: number): number; getenv(k: Buffer): Pointer | null } | undefined;
function c() {
  libc ??= dlopen(process.platform === "darwin" ? "libSystem.B.dylib" : "libc.so.6", {
    setenv: { args: [FFIType.cstring, FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
    getenv: { args: [FFIType.cstring], returns: FFIType.ptr },
  }).symbols as unknown as typeof libc;
  return libc!;
}
const cstr = (s: string) => Buffer.from(`${s}\0`);

/** The value native code sees for `name` (libc getenv), or null. */
export function nativeGetenv(name: string): string | null {
  const p = c().getenv(cstr(name));
  return p ? new CString(p).toString() : null;
}

/** The defaults that ask libgomp to bind threads (it then needs sched_setaffinity). */
const BINDING = new Set(["OMP_PROC_BIND", "OMP_PLACES"]);

interface AffinityCalls { sched_getaffinity(pid: number, size: number, mask: Buffer): number; sched_setaffinity(pid: number, size: number, mask: Buffer): number }
let affinity: AffinityCalls | undefined;
/**
 * Whether this thread may set its CPU affinity (Linux; set to the mask it already has, so nothing changes). The
 * installed systemd unit's SystemCallFilter denies sched_setaffinity (@resources): with binding asked for, libgomp
 * then cannot start a team thread and ends the process ("libgomp: Thread creation failed: Operation not permitted",
 * exit 1, seen on a live systemd at the first 2-thread decode), so binding is asked for only where this answers true.
 */
export function affinityAllowed(): boolean {
  if (process.platform !== "linux") return false;
  try {
    affinity ??= dlopen("libc.so.6", {
      sched_getaffinity: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
      sched_setaffinity: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    }).symbols as unknown as AffinityCalls;
    const mask = Buffer.alloc(128); // 1,024 CPUs, glibc's cpu_set_t
    return affinity.sched_getaffinity(0, mask.length, mask) === 0 && affinity.sched_setaffinity(0, mask.length, mask) === 0;
  } catch { return false; }
}

/**
 * Puts OMP_DEFAULTS into the C environment where it has no value (process.env's value first); returns every variable
 * with the value native code will read (what was set here or already there), for the start log. The binding defaults
 * are left out where sched_setaffinity is not permitted (affinityAllowed); an operator's own value is kept.
 */
export function applyOmpEnv(defaults = OMP_DEFAULTS): Record<string, string> {
  const seen: Record<string, string> = {};
  const bind = affinityAllowed();
  for (const [name, value] of Object.entries(defaults)) {
    if (!bind && BINDING.has(name) && nativeGetenv(name) === null && process.env[name] === undefined) continue;
    // A value only process.env holds (set from JS) is carried over too: native code cannot see it otherwise.
    if (nativeGetenv(name) === null) {
      const v = process.env[name] ?? value;
      if (c().setenv(cstr(name), cstr(v), 0) !== 0) throw new Error(`setenv(${name}) failed`);
      process.env[name] = v;
    }
    seen[name] = nativeGetenv(name) ?? "";
  }
  return seen;
}

/**
 * Whether libgomp's thread binding took (Linux): it binds the thread that loads it, the JS thread, to one CPU at
 * load. False when OMP_PROC_BIND asked for binding but this thread may still run on several CPUs (sched_setaffinity
 * refused, e.g. by the systemd unit's SystemCallFilter); undefined when binding was not asked for or /proc is unreadable.
 */
export function ompBindingTook(omp: Record<string, string>): boolean | undefined {
  if (!omp.OMP_PROC_BIND || /^(false|)$/i.test(omp.OMP_PROC_BIND.trim())) return undefined;
  const cpus = allowedCpus("/proc/thread-self/status");
  return cpus === undefined ? undefined : cpus.length === 1;
}
