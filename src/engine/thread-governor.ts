/**
 * Adaptive inference threads (issue 11 item 4, default `threads: 0`). Measured with scripts/bench-threads.ts on
 * 2 cores: idle, 2 threads prefill 1.6-1.8× faster than 1; with one CPU burner next to it, 2 threads decode 3-5×
 * SLOWER than 1, because node-llama-cpp's prebuilt engine (no OpenMP) spins at every barrier and a thread that
 * loses its CPU to the neighbour holds all the others up. No fixed count is good in both, so the count follows how
 * much CPU everything else is using: every window (thread-policy.ts runs it on a timer) the governor reads the busy
 * time of the CPUs this process may run on minus its own time (thread-sources.ts) and uses
 *   threads = round(allowed CPUs − CPUs busy with others), between 1 and the usable CPUs (cpu-budget.ts).
 * Others' share is measured while our own threads compete for the CPU, so a neighbour that wants a whole CPU shows
 * up as ≥ 2/3 of one next to 2 spinning threads, enough to drop a thread; once dropped it shows as a whole CPU.
 */
import type { CpuTimeSources } from "./thread-sources";

/** How the governor decides; the defaults are what the benchmark was run with. */
export interface GovernorOptions {
  /** Never more threads than this (the usable CPUs: affinity, cgroup quota, online). */
  max: number;
  /** CPUs that busySeconds() covers (the affinity set): what "free" is counted from. */
  cpus: number;
  /** Shortest window others' CPU use is averaged over (ms): /proc/stat counts in 10 ms ticks, so shorter is noise. */
  windowMs?: number;
}

/** A thread-count change, for the log. */
export interface ThreadChange { threads: number; from: number; othersCpu: number; windowMs: number }

/**
 * The CPU-time sources stopped or started answering: `readable` false the first time a read fails after they
 * answered (or at start), true once one succeeds again; `failures` counts failed reads so far, `retryMs` is the
 * wait before the next try.
 */
export interface SourceChange { readable: boolean; failures: number; retryMs?: number }

export const GOVERNOR_WINDOW_MS = 250;
/** Longest wait between tries while the sources cannot be read, in windows (64 × 250 ms = 16 s). */
export const GOVERNOR_MAX_BACKOFF = 64;

/**
 * Picks the thread count for the next decode steps from measured free CPU; `apply` receives each change. While the
 * sources cannot be read it uses `max` (the fixed policy) and tries again after 1, 2, 4 … windows (at most
 * GOVERNOR_MAX_BACKOFF), so one failed read (a /proc hiccup, a transient EMFILE) does not turn the adaptive policy
 * off for the rest of the process; `onSource` hears each loss and recovery (the log).
 */
export class ThreadGovernor {
  private threads: number;
  private last: { at: number; busy: number; own: number } | undefined;
  /** True while the sources cannot be read: the governor then stays at `max` (the fixed policy). */
  unavailable = false;
  /** Failed reads so far; consecutive ones since the last success; when the next try is due (src.now() ms). */
  failures = 0;
  private streak = 0;
  private retryAt = 0;

  constructor(private readonly opts: GovernorOptions, private readonly src: CpuTimeSources,
    private readonly apply: (threads: number, change?: ThreadChange) => void,
    private readonly onSource?: (change: SourceChange) => void) {
    this.threads = Math.max(1, opts.max);
    apply(this.threads);
    this.last = this.sample();
  }

  /** The thread count now in force. */
  get current(): number { return this.threads; }

  private get windowMs() { return this.opts.windowMs ?? GOVERNOR_WINDOW_MS; }

  /** Re-decides when a window has passed since the last sample (else keeps the count); returns the count to use. */
  update(): number {
    const now = this.src.now();
    if (this.unavailable) {
      if (now < this.retryAt) return this.threads;
      // Back: the first window after a gap only sets the baseline (a difference across the gap is no window).
      this.last = this.sample();
      return this.threads;
    }
    // 0.8 of a window: the timer that calls this fires every window, and a tick a little early must not be skipped.
    if (this.last && now - this.last.at < 0.8 * this.windowMs) return this.threads;
    const s = this.sample();
    if (!s) return this.threads;
    const prev = this.last;
    this.last = s;
    if (!prev) return this.threads;
    const seconds = (s.at - prev.at) / 1000;
    const othersCpu = Math.max(0, (s.busy - prev.busy) - (s.own - prev.own)) / seconds;
    const next = threadsFor(this.opts, othersCpu);
    if (next !== this.threads) {
      const change = { threads: next, from: this.threads, othersCpu: Math.round(othersCpu * 100) / 100, windowMs: Math.round(s.at - prev.at) };
      this.threads = next;
      this.apply(next, change);
    }
    return this.threads;
  }

  /** One reading of both sources; on failure the fixed count, and the next try scheduled with back-off. */
  private sample() {
    let busy: number | undefined, own: number | undefined;
    try { busy = this.src.busySeconds(); own = this.src.ownSeconds(); } catch { busy = undefined; }
    const now = this.src.now();
    if (busy === undefined || own === undefined) {
      this.failures++;
      const windows = Math.min(GOVERNOR_MAX_BACKOFF, 2 ** Math.min(this.streak++, 30));
      this.retryAt = now + windows * this.windowMs;
      const lost = !this.unavailable;
      this.unavailable = true;
      if (this.threads !== Math.max(1, this.opts.max)) { this.threads = Math.max(1, this.opts.max); this.apply(this.threads); }
      if (lost) this.onSource?.({ readable: false, failures: this.failures, retryMs: windows * this.windowMs });
      return undefined;
    }
    if (this.unavailable) {
      this.unavailable = false;
      this.streak = 0;
      this.onSource?.({ readable: true, failures: this.failures });
    }
    return { at: now, busy, own };
  }
}

/** round(free CPUs), kept within 1…max (exported for the tests' table). */
export function threadsFor(opts: Pick<GovernorOptions, "max" | "cpus">, othersCpu: number): number {
  return Math.min(Math.max(1, opts.max), Math.max(1, Math.round(opts.cpus - othersCpu)));
}
