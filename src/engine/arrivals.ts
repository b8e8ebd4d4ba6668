/**
 * Burst gathering: the prompts of requests that arrive together are evaluated in one llama_decode step.
 *
 * Why: the server takes a burst's requests through auth, parsing and the guards one after another on one thread
 * (1-8 ms each here on a loaded 2-core box). node-llama-cpp dispatches a decode on the next event-loop turn after
 * the first prompt is queued, so the first request's prompt was evaluated alone and the others waited for it
 * (measured: first steps of 18 then 64 tokens, not one of 82), and the 4th request of a burst got its first token
 * 3.4× later than the 1st; llama-server evaluates a burst's prompts together. Here the server announces each
 * generation request as it is received (`expect`), and says when it has reached the engine's queue or ended;
 * when no sequence of the context is generating (so no running stream waits), the first decode waits until
 * nothing announced is still on its way and nothing new came for a moment (`quietMs`), or `capMs` at most (a
 * request whose body trickles in, or that a guard holds, delays an idle start by no more than that). The cost: a
 * lone request on an idle server waits `quietMs` before its prompt is evaluated.
 */

/** Generation requests received by the server and not yet in the engine's queue. */
export class Arrivals {
  /** Each request on its way, with when it was announced. */
  private readonly pending = new Map<number, number>();
  private next = 0;
  private readonly waiters = new Set<() => void>();
  /** performance.now() of the last announcement or admission: a burst's requests come a few ms apart. */
  last = -Infinity;

  constructor(private readonly staleMs = STALE_MS) {}

  /** A generation request was received; call the returned function (idempotent) once it is queued or has ended. */
  expect(): () => void {
    const id = this.next++;
    this.last = performance.now();
    this.pending.set(id, this.last);
    return () => {
      if (!this.pending.delete(id)) return;
      this.last = performance.now();
      if (this.count === 0) for (const w of [...this.waiters]) w();
    };
  }

  /**
   * Requests still on their way. One announced longer than `staleMs` ago is not part of a burst (a body trickling
   * in, a guard waiting); it stops counting, so a request whose end was somehow never reported cannot hold idle
   * starts back for good.
   */
  get count() {
    const old = performance.now() - this.staleMs;
    for (const [id, at] of this.pending) if (at < old) this.pending.delete(id);
    return this.pending.size;
  }

  /** Runs `fn` once nothing is on its way, or after `capMs`, whichever comes first (once). */
  whenClear(fn: () => void, capMs: number): void {
    if (this.count === 0) return fn();
    const run = () => { this.waiters.delete(run); clearTimeout(timer); fn(); };
    const timer = setTimeout(run, capMs);
    this.waiters.add(run);
  }
}

/** After this long (ms) an announced request no longer counts as on its way. */
const STALE_MS = 1000;

/** How long an idle context's first decode waits, at most (ms), for the rest of a burst. */
export const GATHER_CAP_MS = 20;
/**
 * And how long nothing must have arrived before it goes (ms). The server takes a burst's requests one at a time:
 * the next one is announced 0.3-1.2 ms after the one before was admitted (measured, 4 streams, load 4 on 2 cores).
 */
export const GATHER_QUIET_MS = 2;

/**
 * node-llama-cpp's `batching.dispatchSchedule` with gathering. Busy (some sequence is generating), it dispatches on
 * the next turn as node-llama-cpp's own "nextCycle" does, so running streams never wait for a newcomer. Idle, it
 * waits until nothing announced is on its way and nothing arrived for `quietMs`, `capMs` at most. (node-llama-cpp
 * itself dispatches at once when every sequence has something queued: a full burst does not wait the quiet time.)
 */
export function gatherSchedule(arrivals: Arrivals, idle: () => boolean, quietMs = GATHER_QUIET_MS, capMs = GATHER_CAP_MS) {
  return (dispatch: () => void): void => {
    if (!idle()) { setImmediate(dispatch); return; }
    const deadline = performance.now() + capMs;
    const check = () => {
      const now = performance.now();
      if (now >= deadline) setImmediate(dispatch);
      else if (arrivals.count > 0) arrivals.whenClear(check, deadline - now);
      else if (now - arrivals.last < quietMs) setTimeout(check, Math.min(quietMs - (now - arrivals.last), deadline - now));
      else setImmediate(dispatch);
    };
    check();
  };
}
