/**
 * Requests without a valid key cost an attacker nothing, and each one used to
 * write a log line and an audit record: 30,000 refusals in 10 s added 457 MB.
 * They are still all counted (GET /metrics, appliance_requests_total), but
 * only a bounded number per minute is written; the next line written says how
 * many were left out before it.
 */

/** Lets through at most `perMinute` lines a minute (limits.anonymousLogLinesPerMinute), a token bucket. */
export class LineSampler {
  private level: number;
  private last: number;
  private skipped = 0;

  constructor(private readonly perMinute: number, private readonly clock: () => number) {
    this.level = perMinute;
    this.last = clock();
  }

  /** undefined: leave this one out. A number: write it, noting that many left out since the last one written. */
  take(): number | undefined {
    const now = this.clock();
    this.level = Math.min(this.perMinute, this.level + (Math.max(0, now - this.last) * this.perMinute) / 60_000);
    this.last = now;
    if (this.level < 1) { this.skipped++; return undefined; }
    this.level -= 1;
    const skipped = this.skipped;
    this.skipped = 0;
    return skipped;
  }
}
