/**
 * Release signatures: an Ed25519 signature over the bytes of SHA256SUMS (sha256sum format), and the
 * check `appliance update --signature` makes before it touches anything. The signature file holds the
 * raw 64-byte signature, what `openssl pkeyutl -sign -rawin` writes, so a release can also be checked
 * without this program; base64 text of it is accepted too.
 */
import type { KeyObject } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { nodeCrypto } from "../util/node-builtins";

/** Set by scripts/build.ts from APPLIANCE_RELEASE_PUBKEY (bun run release sets it); absent in source runs. */
declare const APPLIANCE_RELEASE_PUBKEY: string | undefined;

/** The release public key (PEM) this binary was built with, if any. */
export function embeddedReleaseKey(): string | undefined {
  const pem = typeof APPLIANCE_RELEASE_PUBKEY !== "undefined" ? APPLIANCE_RELEASE_PUBKEY : "";
  return pem.trim() ? pem : undefined;
}

/** A release that must not be installed: bad signature, unknown key, a file not listed. The message says which. */
export class ReleaseVerifyError extends Error {
  override name = "ReleaseVerifyError";
}

function ed25519Public(pem: string, where: string): KeyObject {
  let key: KeyObject;
  try {
    key = nodeCrypto().createPublicKey(pem);
  } catch (e) {
    throw new ReleaseVerifyError(`${where} is not a PEM public key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== "ed25519") throw new ReleaseVerifyError(`${where} is a ${key.asymmetricKeyType} key; release keys are Ed25519`);
  return key;
}

/** Signs SHA256SUMS' bytes with an Ed25519 private key (PEM). */
export function signSums(sums: Uint8Array, privateKeyPem: string): Buffer {
  const key = nodeCrypto().createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error(`the signing key is a ${key.asymmetricKeyType} key; release keys are Ed25519`);
  return nodeCrypto().sign(null, sums, key);
}

/** The public half (PEM, SPKI) of an Ed25519 private key. */
export const publicKeyOf = (privateKeyPem: string) =>
  nodeCrypto().createPublicKey(nodeCrypto().createPrivateKey(privateKeyPem)).export({ type: "spki", format: "pem" }).toString();

/** Raw 64 bytes, or the same as base64 text (wrapped over lines too: plain `base64` wraps at 76 characters). */
function signatureBytes(raw: Buffer): Buffer {
  if (raw.length === 64) return raw;
  const text = raw.toString("latin1").replace(/\s+/g, "");
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    const b = Buffer.from(text, "base64");
    if (b.length === 64) return b;
  }
  throw new ReleaseVerifyError(`not an Ed25519 signature (${raw.length} bytes; expected 64 raw bytes or their base64)`);
}

/** sha256sum lines → file name → digest. A `*` (binary mode) before the name is allowed. */
export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new ReleaseVerifyError(`SHA256SUMS has a line that is not "<sha256>  <name>": ${JSON.stringify(line.slice(0, 100))}`);
    out.set(m[2]!, m[1]!);
  }
  return out;
}

export interface SignedRelease {
  /** The binary to install; its name (basename) is looked up in SHA256SUMS. */
  binary: string;
  sumsFile: string;
  signatureFile: string;
  /** PEM public key; the caller passes --pubkey's or the embedded one. */
  publicKeyPem: string;
  /** Where the key came from, for messages. */
  keySource: string;
}

/**
 * Checks the signature over SHA256SUMS and returns the digest it lists for the binary. The binary's
 * own bytes are compared with that digest by the update itself, which hashes what it installs.
 */
export function signedDigest(r: SignedRelease): string {
  const read = (f: string) => {
    try { return fs.readFileSync(f); } catch (e) { throw new ReleaseVerifyError(`cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
  };
  const sums = read(r.sumsFile);
  const sig = signatureBytes(read(r.signatureFile));
  const key = ed25519Public(r.publicKeyPem, r.keySource);
  if (!nodeCrypto().verify(null, sums, key, sig)) {
    throw new ReleaseVerifyError(`the signature ${r.signatureFile} does not match ${r.sumsFile} under ${r.keySource}: wrongly signed or altered`);
  }
  const name = path.basename(r.binary);
  const digest = parseSums(sums.toString("utf8")).get(name);
  if (!digest) throw new ReleaseVerifyError(`${name} is not listed in the signed ${r.sumsFile}`);
  return digest;
}
