/**
 * Accepted signed messages, remembered until their timestamp leaves the window: in this process
 * (NonceCache) or in Redis (one SET NX PX per message, so a message accepted by one instance is a
 * replay on every other). A Redis failure follows the unreachable-Redis policy like the limiter.
 */
import { NonceCache, SignatureError } from "../signature";
import { SharedStateUnavailableError } from "./limiter";
import type { RedisConn } from "./redis-conn";

/** How much clock skew between instances the shared nonces absorb. */
export const NONCE_SKEW_MARGIN_MS = 60_000;

export interface Nonces {
  /** Throws if the message was accepted before (or the key's cache is full). Cheap: before the limiter charges. */
  check(keyId: string, nonce: string, now: number): Promise<void>;
  /** Records the message; throws if another request recorded it first. */
  add(keyId: string, nonce: string, expiresAt: number, now: number): Promise<void>;
}

export function memoryNonces(cache: NonceCache): Nonces {
  return {
    async check(keyId, nonce, now) { cache.check(keyId, nonce, now); },
    async add(keyId, nonce, expiresAt, now) { cache.add(keyId, nonce, expiresAt, now); },
  };
}

export function redisNonces(o: { conn: RedisConn; prefix: string; policy: "local" | "refuse"; local: NonceCache }): Nonces {
  const key = (keyId: string, nonce: string) => `${o.prefix}nonce:${keyId}:${nonce}`;
  const fallback = (what: string) => {
    o.conn.noteFallback(what, o.policy === "refuse");
    if (o.policy === "refuse") throw new SharedStateUnavailableError();
  };
  return {
    async check(keyId, nonce, now) {
      let seen: unknown;
      try { seen = await o.conn.send("EXISTS", [key(keyId, nonce)]); } catch { fallback("signature nonces"); return o.local.check(keyId, nonce, now); }
      if (Number(seen) === 1) throw new SignatureError("Replayed request signature.");
      o.local.check(keyId, nonce, now); // messages accepted while Redis was down are remembered here
    },
    async add(keyId, nonce, expiresAt, now) {
      let set: unknown;
      // Kept a minute longer than this instance's window: another instance whose clock runs up to 60 s behind
      // still finds it until its own window for the timestamp closes.
      const ttl = String(Math.max(1000, expiresAt - now) + NONCE_SKEW_MARGIN_MS);
      try { set = await o.conn.send("SET", [key(keyId, nonce), "1", "NX", "PX", ttl]); } catch { fallback("signature nonces"); return o.local.add(keyId, nonce, expiresAt, now); }
      if (set === null) throw new SignatureError("Replayed request signature."); // another instance took it in between
    },
  };
}
