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

export interface LongSecret {
  id: "private-key" | "jwt";
  /** A complete opening; the match is where the finding starts. */
  open: RegExp;
  /** An opening still being written at the end of the held text (anchored with $). */
  partial: RegExp;
  /** Longest text `partial` can hold; bounds the scanner's hold-back. */
  partialMax: number;
}

/** 3+ dashes (4-dash armor exists), spaces allowed where tokenizers put them. */
const ARMOR = String.raw`-{3,}[ \t]*`;
const LABEL = String.raw`[ A-Z0-9_-]{0,100}`;

export const LONG_SECRETS: LongSecret[] = [
  { id: "private-key", partialMax: 140,
    open: new RegExp(`${ARMOR}BEGIN${LABEL}PRIVATE[ \\t]*KEY`),
    partial: new RegExp(`${ARMOR}(?:B(?:E(?:G(?:I(?:N[ A-Z0-9_\\t-]{0,110})?)?)?)?)?$`) },
  { id: "jwt", partialMax: 1100,
    open: /(?<![A-Za-z0-9_-])ey[A-Za-z0-9_-]{17,}\.ey[A-Za-z0-9_-]/,
    partial: /(?<![A-Za-z0-9_-])ey[A-Za-z0-9_-]{0,1024}(?:\.(?:ey?)?)?$/ },
];

/** The END armor line with its closing dashes, and a character after them (or the stream's end). */
export const PEM_END = new RegExp(`${ARMOR}END${LABEL}PRIVATE[ \\t]*KEY(?:[ \\t]*BLOCK)?[ \\t]*-{3,}(?=[^-])`);
/** What of a dropped PEM body must be kept to recognise its END line when it arrives split. */
export const PEM_END_TAIL = 160;

/** Characters a JWT is made of: base64url and the dots between its parts. */
export const isJwtChar = (c: number) =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95 || c === 46;
