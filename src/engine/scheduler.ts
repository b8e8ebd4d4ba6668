/**
 * A counting semaphore with a bounded wait line. Full line → QueueFullError at
 * once (fail fast, like Ollama's ErrMaxQueue) instead of piling requests up; an
 * aborted waiter leaves the line immediately.
 */
import { CancelledError, QueueFullError } from "../errors";

interface Waiter { resolve: (release: () => void) => void; reject: (e: Error) => void; signal: AbortSignal; onAbort: () => void }

export class Scheduler {
  private active = 0;
  /** Of `active`, the slots lent to background work (lend). */
  private lent = 0;
  private readonly waiting: Waiter[] = [];
  private readonly watchers = new Set<() => void>();

  constructor(readonly slots: number, readonly maxQueue: number, private readonly retryAfterSeconds = 1) {}

  /** Requests holding a slot and waiting for one (a slot lent to background work is not a request's). */
  stats() { return { active: this.active - this.lent, queued: this.waiting.length }; }

  /** Calls `listener` after every change of `stats()`; returns the function that stops it. */
  watch(listener: () => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  private changed() {
    for (const w of [...this.watchers]) w();
  }

  /** Resolves with a release function once a slot is free; rejects with QueueFullError when the line is full. */
  acquire(signal: AbortSignal): Promise<() => void> {
    try {
      return this.admit(signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Admission, decided synchronously: throws QueueFullError (or CancelledError) now, or returns
   * the wait for a slot. Callers that must answer before committing to a response (a stream's
   * 200 headers) know the outcome the moment this returns.
   */
  admit(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) throw new CancelledError();
    if (this.active < this.slots) {
      this.active++;
      this.changed();
      return Promise.resolve(this.releaser());
    }
    // A slot lent to background work is the line's on top of maxQueue: the request it would have gone to waits for it.
    if (this.waiting.length >= this.maxQueue + this.lent) throw new QueueFullError(this.retryAfterSeconds);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve, reject, signal,
        onAbort: () => {
          const i = this.waiting.indexOf(waiter);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new CancelledError());
          this.changed();
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiting.push(waiter);
      this.changed();
    });
  }

  /**
   * A slot for background work (the engine's warm-up), only while one is free and no request waits; undefined
   * otherwise. It takes no request's place: while it is out, a request that finds every slot taken waits for it even
   * where the line is full (maxQueue 0 refused it), and stats() does not count it (/ready, /metrics, drain).
   */
  lend(): (() => void) | undefined {
    if (this.active >= this.slots || this.waiting.length > 0) return undefined;
    this.active++;
    this.lent++;
    return this.releaser(() => this.lent--); // before the slot passes on: a waiter it goes to is a request's
  }

  /** A release function that works once; `first` runs inside that once. */
  private releaser(first?: () => void): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      first?.();
      const next = this.waiting.shift();
      if (next) {
        next.signal.removeEventListener("abort", next.onAbort);
        next.resolve(this.releaser()); // the slot passes straight on; active stays the same
      } else this.active--;
      this.changed();
    };
  }
}
