/**
 * Thread count per small decode step, learnt from how long steps take (issue 11 item 4).
 *
 * Measured with scripts/bench-threads.ts on 2 idle cores (28 M model): 1 thread decodes 1.2-1.45× faster than 2,
 * while prefill is 1.7× faster on 2. A decode step (one token per sequence) is small work split by ~100 barriers
 * per token, and the prebuilt engine starts a worker thread per step; what that costs against what a second core
 * brings depends on the machine and the model (155 M: 1 and 2 threads decode alike), so it is measured, not assumed.
 * For each small batch size the tuner keeps a moving average of step time per thread count (within what the
 * governor allows now), uses the fastest, and re-tries each other count once every `exploreEvery` steps so a change
 * (a neighbour gone, a longer context) is noticed. Large batches (prompts) always get every allowed thread.
 */

/** Tuning knobs; defaults are what the benchmark ran with. */
export interface TunerOptions {
  /** Batches of at most this many tokens are tuned (decode steps of up to this many sequences, short prompts). */
  smallBatch?: number;
  /** One step in this many (per batch size) tries another count than the fastest. */
  exploreEvery?: number;
  /** Weight of the newest step in the moving average. */
  alpha?: number;
}

interface Bucket { ms: Map<number, number>; steps: number; lastTried: Map<number, number>; best?: number }

/** A change of the fastest count for a batch size, for the log. */
export interface TunerChange { batch: number; threads: number; msPerStep: Record<number, number> }

/** Picks each step's thread count; feed it every step's duration. */
export class StepTuner {
  private readonly buckets = new Map<number, Bucket>();
  private readonly small: number;
  private readonly every: number;
  private readonly alpha: number;

  constructor(opts: TunerOptions = {}, private readonly onChange?: (c: TunerChange) => void) {
    this.small = opts.smallBatch ?? 8;
    this.every = opts.exploreEvery ?? 32;
    this.alpha = opts.alpha ?? 0.2;
  }

  /** The thread count for a step of `batch` tokens when `allowed` threads may be used (never more than that). */
  choose(batch: number, allowed: number): number {
    if (allowed <= 1 || batch > this.small) return Math.max(1, allowed);
    const b = this.bucket(batch);
    b.steps++;
    const untried = counts(allowed).find((t) => !b.ms.has(t));
    if (untried !== undefined) return untried;
    const best = this.fastest(b, allowed);
    if (b.steps % this.every !== 0) return best;
    // Explore: the count (other than the fastest) tried longest ago.
    const others = counts(allowed).filter((t) => t !== best);
    return others.reduce((a, t) => ((b.lastTried.get(t) ?? 0) < (b.lastTried.get(a) ?? 0) ? t : a), others[0]!);
  }

  /** How long a step of `batch` tokens on `threads` threads took. */
  record(batch: number, threads: number, ms: number): void {
    if (batch > this.small || !(ms >= 0)) return;
    const b = this.bucket(batch);
    const old = b.ms.get(threads);
    b.ms.set(threads, old === undefined ? ms : old + this.alpha * (ms - old));
    b.lastTried.set(threads, b.steps);
  }

  private fastest(b: Bucket, allowed: number): number {
    let best = allowed;
    for (const t of counts(allowed)) if ((b.ms.get(t) ?? Infinity) < (b.ms.get(best) ?? Infinity)) best = t;
    if (best !== b.best && this.onChange) {
      const batch = [...this.buckets].find(([, x]) => x === b)![0];
      this.onChange({ batch, threads: best, msPerStep: Object.fromEntries([...b.ms].map(([t, ms]) => [t, Math.round(ms * 100) / 100])) });
    }
    b.best = best;
    return best;
  }

  private bucket(batch: number): Bucket {
    let b = this.buckets.get(batch);
    if (!b) this.buckets.set(batch, b = { ms: new Map(), steps: 0, lastTried: new Map() });
    return b;
  }
}

/** allowed, allowed−1, …, 1: the full count is tried first. */
const counts = (allowed: number) => Array.from({ length: allowed }, (_, i) => allowed - i);
