/**
 * Thread count per small decode step, learnt from how long steps take (issue 11 item 4).
 *
 * Measured with scripts/bench-threads.ts on 2 idle cores (28 M model): 1 thread decodes 1.2-1.45× faster than 2,
 * while prefill is 1.7× faster on 2. A decode step (one token per sequence) is small work split by ~100 barriers
 * per token, and the prebuilt engine starts a worker thread per step; what that costs against what a second core
 * brings depends on the machine and the model (155 M: 1 and 2 threads decode alike), so it is measured, not assumed.
 * For each small batch size the tuner runs the count in use (at first: all the governor allows) and now and then
 * tries another count for a short run; it switches when the run's median step beats the median of the last steps
 * on the count in use. A median, because one step hit by interference must not decide (an average let one slow step
 * keep the faster count out for minutes), nor one lucky step (the fastest step favoured 2 threads on the 28 M model,
 * whose 2-thread steps are sometimes fast but mostly slow); comparing with the steps just before keeps both at the
 * same context length. Tries come every `exploreEvery` steps, and at once when the count in use has become more than
 * BEHIND× slower than another count was at its last try (on this machine 2-thread steps of the 28 M model go
 * through fast and slow spells; waiting 64 steps in a slow one cost 1.4×). The first step after the count changed
 * is not measured: it pays for waking the other core. Large batches (prompts) always get every allowed thread.
 */

/** Steps of at most this many tokens are small (decode steps of up to this many sequences, short prompts); larger ones are prompts. */
export const SMALL_STEP = 8;

/** Tuning knobs; defaults are what the benchmark ran with. */
export interface TunerOptions {
  /** Batches of at most this many tokens are tuned (decode steps of up to this many sequences, short prompts). */
  smallBatch?: number;
  /** A try of another count every this many steps (per batch size); the first comes as soon as there is a figure. */
  exploreEvery?: number;
  /** Steps per try (the first is not measured); also how many recent steps of the count in use are kept. */
  runLength?: number;
}

interface Trial { threads: number; left: number; samples: number[] }
interface Bucket {
  allowed: number; best: number; recent: number[]; steps: number; tried: boolean; trial?: Trial; next: number;
  /** Each count's median step at its last measurement, and whether the count in use fell behind one of them. */
  known: Map<number, number>; behind: number | undefined;
}

/** The count in use is re-checked at once when its recent median is this much slower than another count's last one. */
const BEHIND = 1.15;

/** A change of the count used for a batch size, for the log. */
export interface TunerChange { batch: number; threads: number; from: number; medianMs: Record<number, number> }

/** Picks each step's thread count; feed it every step's duration. */
export class StepTuner {
  private readonly buckets = new Map<number, Bucket>();
  private readonly small: number;
  private readonly every: number;
  private readonly runLength: number;
  /** The count of the step before (any batch size): a step on another count than this one is a cold step. */
  private previous = 0;

  constructor(opts: TunerOptions = {}, private readonly onChange?: (c: TunerChange) => void) {
    this.small = opts.smallBatch ?? SMALL_STEP;
    this.every = opts.exploreEvery ?? 64;
    this.runLength = Math.max(2, opts.runLength ?? 4);
  }

  /** The thread count for a step of `batch` tokens when `allowed` threads may be used (never more than that). */
  choose(batch: number, allowed: number): number {
    if (allowed <= 1 || batch > this.small) return Math.max(1, allowed);
    let b = this.buckets.get(batch);
    // A new cap (the governor's) starts over from the full count: what was fastest under another cap says little.
    if (!b || b.allowed !== allowed) {
      this.buckets.set(batch, b = { allowed, best: allowed, recent: [], steps: 0, tried: false, next: 0, known: new Map(), behind: undefined });
    }
    b.steps++;
    if (b.trial && b.trial.left > 0) { b.trial.left--; return b.trial.threads; }
    const due = b.behind !== undefined || (b.tried ? b.steps % this.every === 0 : b.recent.length >= this.runLength - 1);
    if (!due) return b.best;
    const others = counts(allowed).filter((t) => t !== b.best);
    const threads = b.behind ?? others[b.next++ % others.length]!;
    b.behind = undefined;
    b.trial = { threads, left: this.runLength - 1, samples: [] };
    b.tried = true;
    return threads;
  }

  /** How long a step of `batch` tokens on `threads` threads took. */
  record(batch: number, threads: number, ms: number): void {
    const cold = threads !== this.previous;
    this.previous = threads;
    const b = this.buckets.get(batch);
    if (!b || batch > this.small || !(ms >= 0)) return;
    const trial = b.trial;
    if (trial && threads === trial.threads) {
      if (!cold) trial.samples.push(ms);
      if (trial.left === 0) this.conclude(batch, b, trial);
    } else if (threads === b.best && !cold) {
      b.recent.push(ms);
      if (b.recent.length > this.runLength - 1) b.recent.shift();
      if (b.recent.length === this.runLength - 1 && b.tried && !b.trial) {
        const now = median(b.recent);
        for (const [t, known] of b.known) if (t !== b.best && t <= b.allowed && now > known * BEHIND) { b.behind = t; break; }
      }
    }
  }

  private conclude(batch: number, b: Bucket, trial: Trial) {
    b.trial = undefined;
    if (!trial.samples.length || !b.recent.length) return;
    const tried = median(trial.samples), current = median(b.recent);
    b.known.set(trial.threads, tried);
    b.known.set(b.best, current);
    if (tried >= current) return;
    this.onChange?.({ batch, threads: trial.threads, from: b.best, medianMs: { [trial.threads]: round(tried), [b.best]: round(current) } });
    b.best = trial.threads;
    b.recent = trial.samples.slice(-(this.runLength - 1));
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;
/** The middle value (the mean of the two middle ones for an even count). */
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
/** allowed, allowed−1, …, 1. */
const counts = (allowed: number) => Array.from({ length: allowed }, (_, i) => allowed - i);
