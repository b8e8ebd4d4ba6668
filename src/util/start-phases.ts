/**
 * Where a start spends its time: each phase's ms, measured from the previous mark (the first from process start:
 * performance.now() counts from it in Bun, so "bundle" is loading the compiled program up to the first mark).
 * serve logs them as one `start phases` debug line, so a slow start can be read off an operator's log.
 */
export class StartPhases {
  private last = 0;
  /** Phase → ms (a phase marked twice adds up). Insertion order is the order of the start. */
  readonly ms: Record<string, number> = {};

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Closes the phase that ran since the previous mark under `name`. */
  mark(name: string) {
    const t = this.now();
    this.ms[name] = Math.round(((this.ms[name] ?? 0) + t - this.last) * 10) / 10;
    this.last = t;
  }

  /** ms since process start at the last mark. */
  get total() { return Math.round(this.last * 10) / 10; }
}
