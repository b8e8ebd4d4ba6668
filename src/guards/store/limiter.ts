/**
 * The rate limiter the guards call, over one of two stores: this process's memory (RateLimiter,
 * unchanged) or Redis (lua.ts scripts, so every instance draws on one budget per key). With Redis,
 * a Redis failure never becomes a 500: policy "local" answers from this instance's own RateLimiter
 * (and says so in the log), policy "refuse" answers 503.
 */
import { AppError } from "../../errors";
import { randomBytes } from "../../util/random";
import { duration, RateLimiter, RateLimitError, type Limits } from "../rate-limit";
import { ADMIT, CHARGE, ENTER, EXHAUSTED, RENEW } from "./lua";
import type { RedisConn } from "./redis-conn";

/** Redis is unreachable and the policy is "refuse". */
export class SharedStateUnavailableError extends AppError {
  constructor() {
    super("The shared rate-limit store is unreachable; try again shortly.", 503, "service_unavailable", "shared_state_unavailable", null, { "retry-after": "1" });
  }
}

/** Where a decision was made, so the release and the charge go to the same place. */
export type Where = "redis" | "local";
/** A concurrency slot taken by enter(). */
export interface Slot { where: Where; holder?: string }

export interface Limiter {
  /** Seconds until `id` may make a request again when its request bucket is empty now; undefined otherwise. */
  exhausted(id: string, l: Limits): Promise<number | undefined>;
  /** Takes a concurrency slot or throws 429. */
  enter(id: string, l: Limits): Promise<Slot>;
  /** Admits one request (reserving `reserve` tokens) or throws 429; the headers to send. */
  admit(id: string, l: Limits, reserve?: number): Promise<{ headers: Record<string, string>; where: Where }>;
  /** Frees the slot and charges tokens - reserved where the request was admitted. Never throws, never waits. */
  settle(id: string, l: Limits, tokens: number, reserved: number, slot: Slot | undefined, admitted: Where | undefined): void;
}

/** The memory store: exactly the RateLimiter every instance had before Redis. */
export function memoryLimiter(rl: RateLimiter): Limiter {
  return {
    async exhausted(id, l) { return rl.exhausted(id, l); },
    async enter(id, l) { rl.enter(id, l); return { where: "local" }; },
    async admit(id, l, reserve = 0) { return { headers: rl.admit(id, l, reserve), where: "local" }; },
    settle(id, _l, tokens, reserved, slot, admitted) {
      if (slot) rl.release(id);
      if (admitted) rl.charge(id, tokens - reserved);
    },
  };
}

export interface RedisLimiterOptions {
  conn: RedisConn;
  prefix: string;
  policy: "local" | "refuse";
  leaseMs: number;
  /** The per-instance limiter used while Redis is down under policy "local". */
  local: RateLimiter;
}

const cap = (perMinute: number, l: Limits) => Math.max(1, perMinute * l.burst);

function headersOf(l: Limits, r: number[]): Record<string, string> {
  const h: Record<string, string> = {};
  if (l.rpm > 0 && r[0]! >= 0) {
    h["x-ratelimit-limit-requests"] = String(l.rpm);
    h["x-ratelimit-remaining-requests"] = String(r[0]);
    h["x-ratelimit-reset-requests"] = duration(r[1]!);
  }
  if (l.tpm > 0 && r[2]! >= 0) {
    h["x-ratelimit-limit-tokens"] = String(l.tpm);
    h["x-ratelimit-remaining-tokens"] = String(r[2]);
    h["x-ratelimit-reset-tokens"] = duration(r[3]!);
  }
  return h;
}

/** The Redis store; also renews the leases of the slots this instance holds. Call close() to stop that. */
export function redisLimiter(o: RedisLimiterOptions): Limiter & { close(): void } {
  const instance = randomBytes(6).toString("hex");
  let seq = 0;
  const held = new Map<string, Set<string>>(); // slot set → holders of this instance
  // One hash tag per limited id: the bucket and slot set of one key live in one Redis Cluster slot, as ENTER needs.
  const bucket = (id: string) => `${o.prefix}rl:{${id}}`;
  const slots = (id: string) => `${o.prefix}cc:{${id}}`;
  const numbers = (r: unknown) => (r as unknown[]).map(Number);

  /** Runs `viaRedis`; on a Redis failure applies the policy. Refusals (AppErrors) are thrown after, outside. */
  async function decide<T>(viaRedis: () => Promise<T>, locally: () => T, what: string): Promise<T> {
    try {
      return await viaRedis();
    } catch {
      o.conn.noteFallback(what, o.policy === "refuse");
      if (o.policy === "refuse") throw new SharedStateUnavailableError();
      return locally();
    }
  }

  const renew = setInterval(() => {
    for (const [set, holders] of held) {
      if (holders.size) o.conn.script(RENEW, [set], [o.leaseMs, ...holders]).catch(() => {}); // a missed renewal: the lease runs on
    }
  }, Math.max(250, Math.floor(o.leaseMs / 3)));
  renew.unref();

  return {
    async exhausted(id, l) {
      if (l.rpm <= 0) return undefined;
      const ms = await decide(async () => Number(await o.conn.script(EXHAUSTED, [bucket(id)], [l.rpm, cap(l.rpm, l)])),
        () => { const s = o.local.exhausted(id, l); return s === undefined ? -1 : s * 1000; }, "auth-failure limit");
      return ms < 0 ? undefined : Math.max(1, Math.ceil(ms / 1000));
    },

    async enter(id, l) {
      if (l.maxConcurrent <= 0) return { where: "redis" };
      const holder = `${instance}:${++seq}`;
      const r = await decide(async () => numbers(await o.conn.script(ENTER, [slots(id), bucket(id)],
        [l.maxConcurrent, holder, o.leaseMs, l.rpm, cap(l.rpm, l), l.tpm, cap(l.tpm, l)])), () => undefined, "concurrency limit");
      if (!r) { o.local.enter(id, l); return { where: "local" }; }
      if (r[0] === 1) {
        throw new RateLimitError(`Too many concurrent requests for this key (limit ${l.maxConcurrent}).`, 1, headersOf(l, r.slice(1)));
      }
      let set = held.get(slots(id));
      if (!set) held.set(slots(id), (set = new Set()));
      set.add(holder);
      return { where: "redis", holder };
    },

    async admit(id, l, reserve = 0) {
      if (l.rpm <= 0 && l.tpm <= 0) return { headers: {}, where: "redis" };
      const r = await decide(async () => numbers(await o.conn.script(ADMIT, [bucket(id)],
        [l.rpm, cap(l.rpm, l), l.tpm, cap(l.tpm, l), reserve])), () => undefined, "rate limit");
      if (!r) return { headers: o.local.admit(id, l, reserve), where: "local" };
      const headers = headersOf(l, r.slice(2));
      const retry = Math.ceil(r[1]! / 1000);
      if (r[0] === 1) throw new RateLimitError(`Rate limit reached: ${l.rpm} requests per minute.`, retry, headers);
      if (r[0] === 2) {
        throw new RateLimitError(`Rate limit reached: ${l.tpm} tokens per minute${reserve > 0 ? ` (this request reserves ${reserve})` : ""}.`, retry, headers);
      }
      return { headers, where: "redis" };
    },

    settle(id, l, tokens, reserved, slot, admitted) {
      if (slot?.where === "local") o.local.release(id);
      else if (slot?.holder) {
        const set = slots(id);
        held.get(set)?.delete(slot.holder);
        if (held.get(set)?.size === 0) held.delete(set);
        o.conn.send("ZREM", [set, slot.holder]).catch(() => {}); // not released: the lease frees it
      }
      const n = tokens - reserved;
      if (n === 0 || !admitted) return;
      if (admitted === "local") o.local.charge(id, n);
      else if (l.tpm > 0) o.conn.script(CHARGE, [bucket(id)], [l.tpm, cap(l.tpm, l), n]).catch(() => {}); // in the background: the response is out
    },

    close() { clearInterval(renew); },
  };
}
