/**
 * Active health checks: every `intervalMs`, GET <base>/models on each upstream
 * with its own key (no redirects followed). A failed check takes the upstream
 * out of the balancer until a later one passes; the circuit breaker is left to
 * real requests. The timer is injected so tests run checks on demand.
 */
import type { Logger } from "../log/logger";
import { plainMessage } from "./errors";
import type { Upstream } from "./upstream";

/** Runs `fn` every `ms` until the returned function is called. */
export type Every = (ms: number, fn: () => void) => () => void;

export const realEvery: Every = (ms, fn) => {
  const t = setInterval(fn, ms);
  t.unref?.(); // never what keeps the process alive
  return () => clearInterval(t);
};

export class HealthChecker {
  private stopTimer?: () => void;
  private running?: Promise<void>;

  constructor(
    private readonly upstreams: readonly Upstream[],
    private readonly opts: { intervalMs: number; timeoutMs: number },
    private readonly log: Logger,
    private readonly every: Every = realEvery,
  ) {}

  /** Checks once now, then every interval (0: never). */
  start(): void {
    if (!this.opts.intervalMs || this.stopTimer) return;
    void this.checkAll();
    this.stopTimer = this.every(this.opts.intervalMs, () => void this.checkAll());
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = undefined;
  }

  /** One round over every upstream; a round still running is joined, not doubled. */
  checkAll(): Promise<void> {
    this.running ??= Promise.all(this.upstreams.map((u) => this.check(u))).then(() => { this.running = undefined; });
    return this.running;
  }

  private async check(u: Upstream): Promise<void> {
    let ok = false, why = "";
    try {
      const res = await u.send(`${u.base}/models`, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(this.opts.timeoutMs) });
      // A 429 is an upstream that answers, busy: the checks spend the upstream key's own rate limit, and a 429 here took
      // working upstreams out of the balancer, all at once where they share the key's budget (scale-out run).
      ok = (res.status >= 200 && res.status < 300) || res.status === 429;
      why = `HTTP ${res.status}`;
      await res.body?.cancel().catch(() => {});
    } catch (e) {
      why = (e as Error).name === "TimeoutError" ? "timed out" : plainMessage(e);
    }
    if (ok !== u.healthy) {
      if (ok) this.log.info({ upstream: u.name }, "upstream health check passes again");
      else this.log.warn({ upstream: u.name, why }, "upstream failed its health check: taken out of the balancer");
    }
    u.healthy = ok;
  }
}
