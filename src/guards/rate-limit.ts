/**
 * Token buckets for requests/minute and tokens/minute per key (and per client
 * address for traffic without a valid key), plus a per-key concurrency cap.
 * Tokens are reserved when a request is admitted and settled against what it
 * really used when it ends. The clock is injected: tests never sleep.
 */
import { AppError } from "../errors";

export class RateLimitError extends AppError {
  constructor(message: string, retryAfterSeconds: number, headers: Record<string, string>) {
    super(message, 429, "rate_limit_error", "rate_limit_exceeded", null, { ...headers, "retry-after": String(retryAfterSeconds) });
  }
}

export class Bucket {
  private level: number;
  private last: number;
  /** perMinute: refill rate; capacity: most it holds. */
  constructor(readonly perMinute: number, readonly capacity: number, now: number) {
    this.level = capacity;
    this.last = now;
  }
  private refill(now: number) {
    const dt = Math.max(0, now - this.last);
    this.level = Math.min(this.capacity, this.level + (dt * this.perMinute) / 60_000);
    this.last = now;
  }
  /** Takes n if at least 1 is available (n may drive it negative for after-the-fact charges). */
  take(now: number, n = 1, allowDebt = false): boolean {
    this.refill(now);
    if (allowDebt ? this.level <= 0 : this.level < n) return false;
    this.level -= n;
    return true;
  }
  charge(now: number, n: number) { this.refill(now); this.level -= n; }
  remaining(now: number) { this.refill(now); return Math.max(0, Math.floor(this.level)); }
  /** ms until `need` is available. */
  msUntil(now: number, need = 1) { this.refill(now); return this.level >= need ? 0 : Math.ceil(((need - this.level) * 60_000) / this.perMinute); }
}

export interface Limits { rpm: number; tpm: number; burst: number; maxConcurrent: number }

/** OpenAI formats reset times like "1s", "6m0s", "20ms". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = Math.ceil(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

interface Entry { req?: Bucket; tok?: Bucket; active: number; seen: number }

/** A keyed set of buckets; idle entries are dropped so memory stays bounded. */
export class RateLimiter {
  private entries = new Map<string, Entry>();
  constructor(private readonly clock: () => number, private readonly maxEntries = 100_000) {}

  private entry(id: string, l: Limits, now: number): Entry {
    let e = this.entries.get(id);
    if (!e || (e.req && e.req.perMinute !== l.rpm) || (e.tok && e.tok.perMinute !== l.tpm)) {
      if (this.entries.size >= this.maxEntries) this.evict(now);
      e = {
        req: l.rpm > 0 ? new Bucket(l.rpm, Math.max(1, l.rpm * l.burst), now) : undefined,
        tok: l.tpm > 0 ? new Bucket(l.tpm, Math.max(1, l.tpm * l.burst), now) : undefined,
        active: e?.active ?? 0, seen: now,
      };
      this.entries.set(id, e);
    }
    e.seen = now;
    return e;
  }

  private evict(now: number) {
    for (const [k, e] of this.entries) if (e.active === 0 && now - e.seen > 120_000) this.entries.delete(k);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Seconds until `id` may make a request again when its request bucket is empty now; undefined otherwise. Creates nothing. */
  exhausted(id: string, l: Limits): number | undefined {
    const e = this.entries.get(id);
    if (!e?.req || e.req.perMinute !== l.rpm) return undefined;
    const now = this.clock();
    return e.req.remaining(now) < 1 ? Math.max(1, Math.ceil(e.req.msUntil(now) / 1000)) : undefined;
  }

  /**
   * Takes one of the key's concurrency slots or throws 429. Taken as soon as the key is known, before the
   * body is read, so a body that trickles in holds a slot (and a key cannot open unlimited slow uploads).
   */
  enter(id: string, l: Limits) {
    const now = this.clock();
    const e = this.entry(id, l, now);
    if (l.maxConcurrent > 0 && e.active >= l.maxConcurrent) {
      throw new RateLimitError(`Too many concurrent requests for this key (limit ${l.maxConcurrent}).`, 1, this.headers(e, now));
    }
    e.active++;
  }

  /**
   * Admits one request or throws 429; returns the headers to send either way. `reserve` tokens are taken
   * up front (prompt estimate + max_tokens): concurrent requests cannot all spend the same budget. One
   * request larger than the whole bucket may still run when the bucket is full, and then pays the debt.
   */
  admit(id: string, l: Limits, reserve = 0): Record<string, string> {
    const now = this.clock();
    const e = this.entry(id, l, now);
    if (e.req && !e.req.take(now)) {
      throw new RateLimitError(`Rate limit reached: ${l.rpm} requests per minute.`, Math.ceil(e.req.msUntil(now) / 1000), this.headers(e, now));
    }
    if (e.tok) {
      const full = e.tok.remaining(now) >= e.tok.capacity;
      const ok = reserve > 0 ? full || e.tok.take(now, reserve) : e.tok.remaining(now) > 0;
      if (!ok) {
        e.req?.charge(now, -1); // refund: this request did not run
        throw new RateLimitError(`Rate limit reached: ${l.tpm} tokens per minute${reserve > 0 ? ` (this request reserves ${reserve})` : ""}.`,
          Math.ceil(e.tok.msUntil(now, Math.min(Math.max(1, reserve), e.tok.capacity)) / 1000), this.headers(e, now));
      }
      if (full && reserve > 0) e.tok.charge(now, reserve);
    }
    return this.headers(e, now);
  }

  /** After the response: release the concurrency slot, charge the tokens used and refund what was reserved. */
  settle(id: string, tokens: number, countConcurrency: boolean, reserved = 0) {
    if (countConcurrency) this.release(id);
    this.charge(id, tokens - reserved);
  }

  /** Frees one concurrency slot taken by enter(). */
  release(id: string) {
    const e = this.entries.get(id);
    if (e) e.active = Math.max(0, e.active - 1);
  }

  /** Charges n more tokens (negative: refunds) to the token bucket. */
  charge(id: string, n: number) {
    if (n !== 0) this.entries.get(id)?.tok?.charge(this.clock(), n);
  }

  private headers(e: Entry, now: number): Record<string, string> {
    const h: Record<string, string> = {};
    if (e.req) {
      h["x-ratelimit-limit-requests"] = String(e.req.perMinute);
      h["x-ratelimit-remaining-requests"] = String(e.req.remaining(now));
      h["x-ratelimit-reset-requests"] = duration(e.req.msUntil(now, e.req.capacity));
    }
    if (e.tok) {
      h["x-ratelimit-limit-tokens"] = String(e.tok.perMinute);
      h["x-ratelimit-remaining-tokens"] = String(e.tok.remaining(now));
      h["x-ratelimit-reset-tokens"] = duration(e.tok.msUntil(now, e.tok.capacity));
    }
    return h;
  }
}
