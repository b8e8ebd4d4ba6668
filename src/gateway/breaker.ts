/**
 * One upstream's circuit breaker: `threshold` consecutive failures open it for
 * `cooldownMs`; after that it is half-open and lets exactly one request through
 * as a probe. The probe's success closes it, its failure opens it again for
 * another cool-down. The clock is injected so tests move time instead of sleeping.
 */
export type BreakerState = "closed" | "open" | "half-open";

export class CircuitBreaker {
  private failures = 0;
  private openUntil: number | undefined;
  private probing = false;

  constructor(private readonly threshold: number, private readonly cooldownMs: number, private readonly clock: () => number) {}

  get state(): BreakerState {
    if (this.openUntil === undefined) return "closed";
    return this.clock() < this.openUntil ? "open" : "half-open";
  }

  /** Whether a request may be sent now: closed, or half-open with no probe out yet. */
  available(): boolean {
    const s = this.state;
    return s === "closed" || (s === "half-open" && !this.probing);
  }

  /** Takes the pass for one request; in half-open that request is the probe. */
  acquire(): void {
    if (this.state === "half-open") this.probing = true;
  }

  success(): void {
    this.failures = 0;
    this.openUntil = undefined;
    this.probing = false;
  }

  failure(): void {
    const wasClosed = this.state === "closed";
    this.probing = false;
    this.failures++;
    if (!wasClosed || this.failures >= this.threshold) this.openUntil = this.clock() + this.cooldownMs;
  }

  /** The request ended without a verdict (the client left): a probe's pass is handed back. */
  release(): void {
    this.probing = false;
  }

  /** ms until it lets a probe through (0 when it already would). */
  waitMs(): number {
    return this.openUntil === undefined ? 0 : Math.max(0, this.openUntil - this.clock());
  }
}
