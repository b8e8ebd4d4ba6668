/**
 * Least-in-flight choice among the upstreams that may take a request. Ties
 * rotate (round robin), so idle upstreams share the load instead of the first
 * one in the config taking every sequential request.
 */
import type { Upstream } from "./upstream";

export class LeastInflight {
  private turn = 0;

  /**
   * The usable upstream with the fewest requests in flight, preferring ones not in `tried`
   * (a retry goes elsewhere when it can, and back to the same one when it is the only one left).
   */
  pick(candidates: readonly Upstream[], tried: ReadonlySet<Upstream> = new Set()): Upstream | undefined {
    const usable = candidates.filter((u) => u.usable());
    const fresh = usable.filter((u) => !tried.has(u));
    const pool = fresh.length ? fresh : usable;
    if (!pool.length) return undefined;
    const start = this.turn++ % pool.length;
    let best: Upstream | undefined;
    for (let i = 0; i < pool.length; i++) {
      const u = pool[(start + i) % pool.length]!;
      if (!best || u.inflight < best.inflight) best = u;
    }
    return best;
  }
}
