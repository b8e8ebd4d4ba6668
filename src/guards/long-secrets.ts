/**
 * Secrets too long for a hold-back window: PEM private keys (an RSA-16384 body
 * is ~12 KB) and JWTs (kilobytes with embedded claims). The response scanner
 * does not wait for their end to decide: the opening is already the evidence
 * (a "BEGIN … PRIVATE KEY" armor line, a base64url JSON header followed by a
 * payload). From the opening on, everything is dropped until the secret
 * provably ends — the END armor line, or the first character outside the
 * token alphabet — so memory stays bounded and a key cut off by max_tokens
 * never leaks its body either.
 */

import { analysePattern } from "./regex-prefix";

export interface LongSecret {
  /** How it ends: a PEM at its END line, a JWT and a base64 PEM where their characters end. */
  id: "private-key" | "jwt" | "private-key-base64";
  /** The finding's name (`[REDACTED:<rule>]`). */
  rule: "private-key" | "jwt";
  /** A substring every opening contains: a quick indexOf before the regex, since most text has none. */
  hint: string;
  /** A complete opening; the match is where the finding starts. */
  open: RegExp;
  /**
   * Where an opening still being written at the end of `text` starts (text.length if none); bounded look-back.
   * `from`: no position before it is looked at (a stream's filter knows none there can start one: live-tail.ts).
   */
  partial(text: string, from?: number): number;
}

/**
 * 3+ dashes (4-dash armor exists), spaces allowed where tokenizers put them. Only from the first dash of a
 * run: a long run of dashes would otherwise be re-scanned from each of its dashes (quadratic).
 */
const ARMOR = String.raw`(?<!-)-{3,}[ \t]*`;
const LABEL = String.raw`[ A-Z0-9_-]{0,100}`;
/**
 * Longest opening held back while it is still being written (a JWT's header plus a payload's start, a PEM armor line):
 * a JWT header carrying an x5c certificate chain runs to kilobytes, and armor may hold long blank runs.
 */
export const OPENING_HOLD_MAX = 8192;

/**
 * Where an opening still being written at the end of `text` starts (text.length if none): the earliest position in
 * the last OPENING_HOLD_MAX characters from which the text could still grow into a match of `open` (its prefix
 * regex, regex-prefix.ts) — an armor whose dashes are followed by any run of spaces, a JWT after a dot.
 */
function partialOf(open: RegExp): (text: string, from?: number) => number {
  const { liveStart } = analysePattern(open)!;
  return (text, from = 0) => liveStart(text, Math.max(from, text.length - OPENING_HOLD_MAX));
}
const PEM_OPEN = new RegExp(`${ARMOR}BEGIN${LABEL}PRIVATE[ \t]*KEY`);
const JWT_OPEN = /(?<![A-Za-z0-9_-])ey[A-Za-z0-9_-]{17,}\.ey[A-Za-z0-9_-]/;
/**
 * A whole PEM private key in base64, as kubeconfig's `client-key-data:` and Kubernetes secrets hold it (a third
 * fix-attack run: ~2,200 characters on one line, past the encoded-run window, went out whole): the run starts with
 * base64 of "-----BEGIN " and reads "PRIVATE KEY" (in one of its three alignments) within a label's length.
 * A certificate (`client-certificate-data:`) is no secret and does not match.
 */
const PEM_BASE64_OPEN = /(?<![A-Za-z0-9+/])LS0tLS1CRUdJTi[A-Za-z0-9+/]{0,140}(?:UFJJVkFURSBL|BSSVZBVEUgS0VZ|QUklWQVRFIEtF)/;

export const LONG_SECRETS: LongSecret[] = [
  { id: "private-key", rule: "private-key", hint: "---", open: PEM_OPEN, partial: partialOf(PEM_OPEN) },
  { id: "jwt", rule: "jwt", hint: ".ey", open: JWT_OPEN, partial: partialOf(JWT_OPEN) },
  { id: "private-key-base64", rule: "private-key", hint: "LS0tLS1CRUdJTi", open: PEM_BASE64_OPEN, partial: partialOf(PEM_BASE64_OPEN) },
];

/** The END armor line with its closing dashes, and a character after them (or the stream's end). */
export const PEM_END = new RegExp(`${ARMOR}END${LABEL}PRIVATE[ \\t]*KEY(?:[ \\t]*BLOCK)?[ \\t]*-{3,}(?=[^-])`);
/** What of a dropped PEM body must be kept to recognise its END line when it arrives split. */
export const PEM_END_TAIL = 160;

/** Characters of base64 (a base64 PEM's run, padding included). */
export const isBase64Char = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 43 || c === 47 || c === 61;
/** Characters a JWT is made of: base64url and the dots between its parts. */
export const isJwtChar = (c: number) =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95 || c === 46;
