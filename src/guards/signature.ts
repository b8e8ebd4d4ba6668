/**
 * Optional per-key request signing. The client sends
 *   x-appliance-timestamp: unix seconds
 *   x-appliance-signature: hex HMAC-SHA256(signingKey, METHOD\nPATH\nTIMESTAMP\nhex(sha256(body)))
 * where signingKey = hex(sha256(api key)). Skew over 300 s and replays
 * (same signature twice within the window) are refused.
 */
import crypto from "node:crypto";
import { AppError } from "../errors";

export const MAX_SKEW_S = 300;

export class SignatureError extends AppError {
  constructor(message: string) { super(message, 401, "authentication_error", "invalid_signature"); }
}

export function signingString(method: string, path: string, timestamp: string, body: string | Uint8Array) {
  const bodyHash = crypto.createHash("sha256").update(body).digest("hex");
  return `${method.toUpperCase()}\n${path}\n${timestamp}\n${bodyHash}`;
}

export function sign(signingKeyHex: string, method: string, path: string, timestamp: string, body: string | Uint8Array) {
  return crypto.createHmac("sha256", signingKeyHex).update(signingString(method, path, timestamp, body)).digest("hex");
}

/** Remembers recent signatures until they are too old to pass the skew check anyway. */
export class NonceCache {
  private seen = new Map<string, number>();
  constructor(private readonly max = 100_000) {}
  /** false if sig was seen already. */
  add(sig: string, expiresAt: number, now: number): boolean {
    if (this.seen.size >= this.max) for (const [k, exp] of this.seen) { if (exp <= now || this.seen.size >= this.max) this.seen.delete(k); else break; }
    const prev = this.seen.get(sig);
    if (prev !== undefined && prev > now) return false;
    this.seen.set(sig, expiresAt);
    return true;
  }
}

export function verifySignature(opts: {
  signingKeyHex: string; method: string; path: string; body: string; headers: Headers; nowMs: number; nonces: NonceCache;
}) {
  const ts = opts.headers.get("x-appliance-timestamp");
  const sig = opts.headers.get("x-appliance-signature");
  if (!ts || !sig) throw new SignatureError("This key requires signed requests: send x-appliance-timestamp and x-appliance-signature.");
  if (!/^\d{1,12}$/.test(ts)) throw new SignatureError("x-appliance-timestamp must be unix seconds.");
  const skew = Math.abs(opts.nowMs / 1000 - Number(ts));
  if (skew > MAX_SKEW_S) throw new SignatureError(`Request timestamp is ${Math.round(skew)} s off the server clock (max ${MAX_SKEW_S} s).`);
  if (!/^[0-9a-f]{64}$/i.test(sig)) throw new SignatureError("x-appliance-signature must be 64 hex characters.");
  const expected = Buffer.from(sign(opts.signingKeyHex, opts.method, opts.path, ts, opts.body), "hex");
  if (!crypto.timingSafeEqual(expected, Buffer.from(sig.toLowerCase(), "hex"))) throw new SignatureError("Request signature does not match.");
  if (!opts.nonces.add(sig.toLowerCase(), opts.nowMs + 2 * MAX_SKEW_S * 1000, opts.nowMs)) throw new SignatureError("Replayed request signature.");
}
