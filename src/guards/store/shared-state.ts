/**
 * Builds the state the guards keep between requests (rate limits, concurrency slots, signature
 * nonces, key revocations) from config.rateLimit.store: in this process, or in Redis shared by
 * every instance. status() is what /health and /metrics can show about it.
 */
import fs from "node:fs";
import type { Config } from "../../config/schema";
import { ConfigError } from "../../config/load";
import type { Logger } from "../../log/logger";
import { RateLimiter } from "../rate-limit";
import { NonceCache } from "../signature";
import { memoryLimiter, redisLimiter, type Limiter } from "./limiter";
import { memoryNonces, redisNonces, type Nonces } from "./nonces";
import { RedisConn } from "./redis-conn";
import { SharedRevocations } from "./revocations";

export interface SharedStateStatus {
  store: "memory" | "redis";
  /** Store redis: the unreachable-Redis policy in force. */
  policy?: "local" | "refuse";
  /** Store redis: whether Redis answers now; while false, policy "local" serves with per-instance limits. */
  redisUp?: boolean;
  /** ms timestamp of the last up/down change. */
  since?: number;
  lastError?: string;
  /** Store redis: operations (limit checks, nonce checks, revocation reads) answered without Redis since the start, by operation. */
  fallbacks?: Record<string, number>;
}

export interface SharedState {
  limiter: Limiter;
  /** The failed-auth throttle (per address and network), shared too so guesses spread over instances still add up. */
  authFailures: Limiter;
  nonces: Nonces;
  /** Store redis only. */
  revocations?: SharedRevocations;
  status(): SharedStateStatus;
  close(): void;
}

/** The Redis password from redisPasswordFile or redisPasswordEnv (never logged). */
export function redisPassword(rl: Config["rateLimit"], env = process.env): string | undefined {
  if (rl.redisPasswordFile && rl.redisPasswordEnv) throw new ConfigError("give one of rateLimit.redisPasswordFile and rateLimit.redisPasswordEnv", "rateLimit.redisPasswordFile");
  if (rl.redisPasswordFile) {
    try { return fs.readFileSync(rl.redisPasswordFile, "utf8").trim(); } catch (e) {
      throw new ConfigError(`cannot read rateLimit.redisPasswordFile ${rl.redisPasswordFile}: ${(e as NodeJS.ErrnoException).code ?? e}`, "rateLimit.redisPasswordFile");
    }
  }
  if (rl.redisPasswordEnv) {
    const v = env[rl.redisPasswordEnv];
    if (!v) throw new ConfigError(`rateLimit.redisPasswordEnv names ${rl.redisPasswordEnv}, which is not set`, "rateLimit.redisPasswordEnv");
    return v;
  }
  return undefined;
}

/** A connection for store "redis" (also used by `keys revoke` to share a revocation). */
export function redisConnFor(config: Readonly<Config>, log: Pick<Logger, "error" | "warn" | "info">): RedisConn {
  const rl = config.rateLimit;
  checkRedisUrl(rl);
  return new RedisConn({ url: rl.redisUrl, password: redisPassword(rl), timeoutMs: rl.redisTimeoutMs, log });
}

/** rateLimit.redisUrl for store "redis": given, and a scheme Bun's client takes (ConfigError otherwise; config validate too). */
export function checkRedisUrl(rl: Config["rateLimit"]) {
  if (!rl.redisUrl) throw new ConfigError("rateLimit.store is \"redis\" but rateLimit.redisUrl is empty", "rateLimit.redisUrl");
  if (!/^(redis|rediss|valkey|valkeys|redis\+tls|redis\+unix|redis\+tls\+unix):\/\//.test(rl.redisUrl)) {
    throw new ConfigError("rateLimit.redisUrl must start with redis://, rediss:// or redis+unix://", "rateLimit.redisUrl");
  }
}

export function createSharedState(config: Readonly<Config>, log: Pick<Logger, "error" | "warn" | "info">, clock: () => number): SharedState {
  const rl = config.rateLimit;
  const local = new RateLimiter(clock);
  const localFailures = new RateLimiter(clock);
  const localNonces = new NonceCache();
  if (rl.store === "memory") {
    return {
      limiter: memoryLimiter(local), authFailures: memoryLimiter(localFailures), nonces: memoryNonces(localNonces),
      status: () => ({ store: "memory" }), close() {},
    };
  }
  const conn = redisConnFor(config, log);
  const common = { conn, policy: rl.redisUnavailable, leaseMs: rl.concurrencyLeaseMs };
  const limiter = redisLimiter({ ...common, prefix: rl.redisPrefix, local });
  const authFailures = redisLimiter({ ...common, prefix: `${rl.redisPrefix}auth:`, local: localFailures });
  return {
    limiter, authFailures,
    nonces: redisNonces({ conn, prefix: rl.redisPrefix, policy: rl.redisUnavailable, local: localNonces }),
    revocations: new SharedRevocations({ conn, prefix: rl.redisPrefix, policy: rl.redisUnavailable, clock }),
    status: () => {
      const s = conn.status();
      return { store: "redis", policy: rl.redisUnavailable, redisUp: s.up, since: s.since, ...(s.lastError ? { lastError: s.lastError } : {}), fallbacks: s.fallbacks };
    },
    close() { limiter.close(); authFailures.close(); conn.close(); },
  };
}
