/**
 * Optional per-key request signing with a secret the request never carries. The key holder
 * makes an Ed25519 key pair and registers the public half (`keys create --require-signature
 * --public-key FILE`); the server stores only that public key. Every request then sends
 *   x-appliance-timestamp: unix seconds
 *   x-appliance-signature: base64 (or hex) Ed25519 signature of METHOD\nPATH\nTIMESTAMP\nhex(sha256(body))
 * so a captured request (bearer key included) cannot be turned into a new one. Timestamps more
 * than 300 s off, or from before this process started, are refused; within a process each signed
 * message is accepted once (see NonceCache).
 */
import type { KeyObject } from "node:crypto";
import { AppError } from "../errors";
import { nodeCrypto } from "../util/node-builtins";
import { RateLimitError } from "./rate-limit";

export const MAX_SKEW_S = 300;
/** Accepted signed messages remembered per key; past this many unexpired ones the key is refused (429), never forgotten. */
export const MAX_NONCES_PER_KEY = 100_000;

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow it. */
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

export class SignatureError extends AppError {
  // Typed as OpenAI's own 401s, and with the challenge every 401 must carry (RFC 9110 §15.5.2), as auth.ts's AuthError.
  constructor(message: string) { super(message, 401, "invalid_request_error", "invalid_signature", null, { "www-authenticate": "Bearer" }); }
}

export function signingString(method: string, path: string, timestamp: string, body: string | Uint8Array) {
  const bodyHash = new Bun.CryptoHasher("sha256").update(body).digest("hex");
  return `${method.toUpperCase()}\n${path}\n${timestamp}\n${bodyHash}`;
}

/** Signs like a client would (tests, tools): base64 Ed25519 signature with a private KeyObject or PEM. */
export function sign(privateKey: KeyObject | string, method: string, path: string, timestamp: string, body: string | Uint8Array) {
  return nodeCrypto().sign(null, Buffer.from(signingString(method, path, timestamp, body)), privateKey).toString("base64");
}

/** An Ed25519 public key given as PEM (openssl pkey -pubout) or base64 of its 32 raw bytes → base64 of the raw bytes. */
export function parsePublicKey(text: string): string {
  const t = text.trim();
  let raw: Buffer | undefined;
  if (t.startsWith("-----BEGIN")) {
    let key: KeyObject;
    try { key = nodeCrypto().createPublicKey(t); } catch { throw new Error("the public key is not a valid PEM public key"); }
    if (key.asymmetricKeyType !== "ed25519") throw new Error(`the public key is ${key.asymmetricKeyType}, not ed25519`);
    raw = key.export({ format: "der", type: "spki" }).subarray(SPKI_ED25519.length);
  } else if (/^[A-Za-z0-9+/]{43}=$/.test(t)) raw = Buffer.from(t, "base64");
  if (!raw || raw.length !== 32) throw new Error("the public key must be an Ed25519 PEM public key or base64 of its 32 raw bytes");
  return raw.toString("base64");
}

const publicKeyObject = (raw: string) =>
  nodeCrypto().createPublicKey({ key: Buffer.concat([SPKI_ED25519, Buffer.from(raw, "base64")]), format: "der", type: "spki" });

function decodeSignature(sig: string): Buffer | undefined {
  if (/^[0-9a-f]{128}$/i.test(sig)) return Buffer.from(sig, "hex");
  if (/^[A-Za-z0-9+/]{86}==$/.test(sig)) return Buffer.from(sig, "base64");
  return undefined;
}

/**
 * Remembers every accepted signed message per key until its timestamp leaves the window. Never
 * evicts an unexpired entry: a key that fills its cache is refused until entries expire, so one key
 * cannot flush another's (or its own) history to make a replay pass.
 */
export class NonceCache {
  private byKey = new Map<string, Map<string, number>>();
  constructor(private readonly maxPerKey = MAX_NONCES_PER_KEY) {}

  private sweep(keyId: string, now: number): Map<string, number> {
    let m = this.byKey.get(keyId);
    if (!m) this.byKey.set(keyId, (m = new Map()));
    // Entries go in with non-decreasing expiry only approximately (timestamps vary), so sweep all expired ones.
    if (m.size >= this.maxPerKey) for (const [k, exp] of m) if (exp <= now) m.delete(k);
    return m;
  }

  /** Throws if the message was accepted before, or if the key's cache is full of unexpired entries. */
  check(keyId: string, nonce: string, now: number) {
    const m = this.sweep(keyId, now);
    const exp = m.get(nonce);
    if (exp !== undefined && exp > now) throw new SignatureError("Replayed request signature.");
    if (m.size >= this.maxPerKey) {
      throw new RateLimitError(`Too many signed requests for this key in the last ${2 * MAX_SKEW_S} s.`, MAX_SKEW_S, {});
    }
  }

  add(keyId: string, nonce: string, expiresAt: number, now: number) {
    this.check(keyId, nonce, now);
    this.byKey.get(keyId)!.set(nonce, expiresAt);
  }

  size(keyId: string) { return this.byKey.get(keyId)?.size ?? 0; }
}

/**
 * Checks headers and signature; returns the message's nonce (sha256 of the signed string, so two
 * encodings of one signature are one message) and when it may be forgotten. Does not record it:
 * the caller does, after the rate limiter has charged the request.
 */
export function verifySignature(opts: {
  publicKey: string | null; method: string; path: string; body: string; headers: Headers; nowMs: number; startedMs: number;
  /** Timestamps up to this were maybe accepted ahead of the clock by an earlier process (signature-floor.ts). */
  floorS?: number;
}): { nonce: string; expiresAt: number; ts: number } {
  const ts = opts.headers.get("x-appliance-timestamp");
  const sig = opts.headers.get("x-appliance-signature");
  // First: a key made by a release that signed with HMAC has no public key; its client's old-style signature was
  // refused as malformed, and the way out (rotate with --public-key) was never said (upgrade run).
  if (!opts.publicKey) throw new SignatureError("This key requires signed requests but has no Ed25519 public key registered (a key made before signatures were Ed25519): rotate it with keys rotate NAME --public-key FILE.");
  if (!ts || !sig) throw new SignatureError("This key requires signed requests: send x-appliance-timestamp and x-appliance-signature.");
  if (!/^\d{1,12}$/.test(ts)) throw new SignatureError("x-appliance-timestamp must be unix seconds.");
  const skew = Math.abs(opts.nowMs / 1000 - Number(ts));
  if (skew > MAX_SKEW_S) throw new SignatureError(`Request timestamp is ${Math.round(skew)} s off the server clock (max ${MAX_SKEW_S} s).`);
  // Nonces live in memory: a message signed before this process started may have been accepted by the previous one.
  if (Number(ts) < Math.ceil(opts.startedMs / 1000)) {
    throw new SignatureError("Request timestamp is from before the server started; sign the request again with the current time.");
  }
  if (opts.floorS !== undefined && Number(ts) <= opts.floorS) {
    throw new SignatureError("Request timestamp is not after one the server accepted before it restarted (a client clock ahead of the server's); sign the request again with the current time.");
  }
  const bytes = decodeSignature(sig);
  if (!bytes) throw new SignatureError("x-appliance-signature must be a base64 (88 characters) or hex (128) Ed25519 signature.");
  const message = signingString(opts.method, opts.path, ts, opts.body);
  let ok = false;
  try { ok = nodeCrypto().verify(null, Buffer.from(message), publicKeyObject(opts.publicKey), bytes); } catch { ok = false; }
  if (!ok) throw new SignatureError("Request signature does not match.");
  return { nonce: new Bun.CryptoHasher("sha256").update(message).digest("hex"), expiresAt: (Number(ts) + MAX_SKEW_S) * 1000 + 1000, ts: Number(ts) };
}
