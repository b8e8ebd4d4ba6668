/**
 * Every generation in flight, so a shutdown can wait for them for the grace
 * period and then cancel the rest.
 */
export class Inflight {
  private readonly controllers = new Set<AbortController>();

  /** A controller that aborts with the client's request and with drain(). */
  begin(clientSignal: AbortSignal): { signal: AbortSignal; abort: () => void; end: () => void } {
    const c = new AbortController();
    const onClient = () => c.abort(new Error("client disconnected"));
    if (clientSignal.aborted) onClient();
    else clientSignal.addEventListener("abort", onClient, { once: true });
    this.controllers.add(c);
    return {
      signal: c.signal,
      abort: () => c.abort(new Error("client disconnected")),
      end: () => { this.controllers.delete(c); clientSignal.removeEventListener("abort", onClient); },
    };
  }

  get size() { return this.controllers.size; }

  cancelAll(reason = "server shutting down") {
    for (const c of this.controllers) c.abort(new Error(reason));
  }
}
