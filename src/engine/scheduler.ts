/**
 * A counting semaphore with a bounded wait line. Full line → QueueFullError at
 * once (fail fast, like Ollama's ErrMaxQueue) instead of piling requests up; an
 * aborted waiter leaves the line immediately.
 */
import { CancelledError, QueueFullError } from "../errors";

interface Waiter { resolve: (release: () => void) => void; reject: (e: Error) => void; signal: AbortSignal; onAbort: () => void }

export class Scheduler {
  private active = 0;
  private readonly waiting: Waiter[] = [];
  private readonly watchers = new Set<() => void>();

  constructor(readonly slots: number, readonly maxQueue: number, private readonly retryAfterSeconds = 1) {}

  stats() { return { active: this.active, queued: this.waiting.length }; }

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
    if (this.waiting.length >= this.maxQueue) throw new QueueFullError(this.retryAfterSeconds);
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

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) {
        next.signal.removeEventListener("abort", next.onAbort);
        next.resolve(this.releaser()); // the slot passes straight on; active stays the same
      } else this.active--;
      this.changed();
    };
  }
}
