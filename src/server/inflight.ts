/**
 * Every generation in flight, so a shutdown can wait for them for the grace period and then cancel the rest, and a
 * lockdown can cut them at once (`watch`).
 */
import { type AppError, ShuttingDownError } from "../errors";

/** What a request the server cut before anything was generated for it gets (a 503 the SDKs retry, or lockdown's). */
export type CutError = () => AppError;

/** One request's flight: aborted with the client's request or by the server (`cut` then says with what). */
export interface Flight {
  signal: AbortSignal;
  abort: () => void;
  end: () => void;
  /** Set when the server cut it (cancelAll), not the client: its answer still ends properly, cut short. */
  cut: () => CutError | undefined;
}

export class Inflight {
  private readonly flights = new Map<AbortController, { cut?: CutError }>();
  private watcher?: { check: () => { reason: string; error: CutError } | undefined; everyMs: number; timer?: ReturnType<typeof setInterval> };

  /** A controller that aborts with the client's request and with cancelAll(). */
  begin(clientSignal: AbortSignal): Flight {
    const c = new AbortController();
    const entry: { cut?: CutError } = {};
    const onClient = () => c.abort(new Error("client disconnected"));
    if (clientSignal.aborted) onClient();
    else clientSignal.addEventListener("abort", onClient, { once: true });
    this.flights.set(c, entry);
    this.arm();
    return {
      signal: c.signal,
      abort: () => c.abort(new Error("client disconnected")),
      end: () => { this.flights.delete(c); clientSignal.removeEventListener("abort", onClient); this.arm(); },
      cut: () => entry.cut,
    };
  }

  get size() { return this.flights.size; }

  cancelAll(reason = "server shutting down", error: CutError = () => new ShuttingDownError()) {
    for (const [c, entry] of this.flights) {
      if (c.signal.aborted) continue;
      entry.cut = error;
      c.abort(new Error(reason));
    }
  }

  /**
   * While anything is in flight, asks `check` every `everyMs` whether the server must cut it all (lockdown: requests
   * already generating ran on to their max_tokens, claims audit). Nothing runs while nothing is in flight.
   */
  watch(check: () => { reason: string; error: CutError } | undefined, everyMs: number) {
    this.watcher = { check, everyMs };
  }

  private arm() {
    const w = this.watcher;
    if (!w) return;
    if (this.flights.size > 0 && !w.timer) {
      w.timer = setInterval(() => {
        const cut = w.check();
        if (cut) this.cancelAll(cut.reason, cut.error);
      }, w.everyMs);
      w.timer.unref?.();
    } else if (this.flights.size === 0 && w.timer) {
      clearInterval(w.timer);
      w.timer = undefined;
    }
  }
}
