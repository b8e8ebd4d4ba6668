/**
 * Short encoded forms of a secret (base64, base64url, hex): runs of 24–256
 * alphabet characters that decode to printable text, which the response
 * scanner then scans with its secret rules. Longer runs are not one short
 * secret and are left alone.
 */

/** The alphabet of base64, base64url and hex. */
const ALPHABET = new Uint8Array(65536); // looked up, not compared: range tests branch on every character
for (let c = 0; c < 128; c++) ALPHABET[c] = /[A-Za-z0-9+/_-]/.test(String.fromCharCode(c)) ? 1 : 0;
const isAlphabet = (c: number) => ALPHABET[c] === 1;
const MIN = 24;
/** A run longer than this (with its `=` padding) is not one short secret. */
const MAX = 258;
/** Longest encoded run scanned as one secret: a stream must be able to hold one whole. */
export const ENCODED_MAX = MAX;

/**
 * Base64 wrapped over lines, as `base64` (76 columns) and PEM (64) write it: the run [s, e) ends its line (no padding,
 * a multiple of 4 long; text may come before it, "key: …"), and the lines after it are as long, but for the last
 * (shorter, or padded); one line break (\n or \r\n) between them; up to MAX characters in all, line breaks included (a
 * stream holds one whole). Where the run may end, longest first: after a shorter last line, and after the last full
 * line (the shorter one may be a word that follows, or a stream's line still being written); none when no line follows.
 */
function wrappedEnds(text: string, s: number, e: number): number[] {
  const width = e - s, n = text.length;
  if (width % 4 || text.charCodeAt(e - 1) === 61) return [];
  let end = e;
  const ends: number[] = [];
  for (;;) {
    let p = end;
    if (text.charCodeAt(p) === 13) p++;
    if (text.charCodeAt(p) !== 10) break;
    let q = ++p;
    while (q < n && q - p <= width && isAlphabet(text.charCodeAt(q))) q++;
    const len = q - p;
    if (len === 0 || len > width || q - s > MAX) break;
    if (!quadsPrintable(text, p, p + (len & ~3))) break; // a word after it ("Done"), not a piece of the same text
    let r = q;
    for (let k = 0; k < 2 && text.charCodeAt(r) === 61; k++) r++;
    if (len < width || r > q) { // a shorter or padded line is the last
      if (end > e) ends.push(end);
      end = r;
      break;
    }
    end = r;
  }
  if (end > e) ends.push(end);
  return ends.reverse();
}

/**
 * Maximal alphabet runs of at least 24 characters, each with up to two `=` after it, as [start, end) pairs; runs
 * over 258 chars are skipped. A run right after `=` is read too: it was skipped as "the tail of a longer encoded
 * text", so `x=<base64>` leaked, and then any 24-character prefix ending in `=` faked such a tail.
 * Probes every 24th character: in prose the probe is usually in a short word, and the next probe can skip
 * past that word's start + 24, so most characters are never read.
 */
export function encodedRuns(text: string): [number, number][] {
  const runs: [number, number][] = [];
  const n = text.length;
  let p = MIN - 1;
  while (p < n) {
    if (!isAlphabet(text.charCodeAt(p))) { p += MIN; continue; }
    let s = p;
    while (s > p - MIN + 1 && isAlphabet(text.charCodeAt(s - 1))) s--;
    if (s > p - MIN + 1) { p = s + MIN - 1; continue; } // the run holding p is too short to reach back 24
    while (s > 0 && isAlphabet(text.charCodeAt(s - 1))) s--;
    let e = p + 1;
    while (e < n && isAlphabet(text.charCodeAt(e))) e++;
    const runEnd = e;
    for (let k = 0; k < 2 && e < n && text.charCodeAt(e) === 61; k++) e++;
    if (e - s <= MAX) {
      // A wrapped run is read whole first (a key's base64 over three lines: each line alone decodes to a piece no
      // rule recognises); its lines are still read alone after it, for secrets that were each encoded on their own.
      for (const wrapped of wrappedEnds(text, s, e)) runs.push([s, wrapped]);
      runs.push([s, e]);
    }
    p = runEnd + MIN; // the next run starts after runEnd
  }
  return runs;
}

/** Base64/base64url digit values (-1: not one). */
const B64 = new Int8Array(128).fill(-1);
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".split("").forEach((c, i) => (B64[c.charCodeAt(0)] = i));
B64[45] = 62; B64[95] = 63; // - and _ (base64url), as Buffer decodes them
const printable = (b: number) => (b >= 0x20 && b <= 0x7e) || b === 9 || b === 10 || b === 13;
/**
 * PRINTABLE_FROM[c][b]: some byte from b to b + 4^c - 1 is printable — the values left for the next byte of a quad
 * whose c-th character has fixed its high 8 - 2c bits to b's.
 */
const PRINTABLE_FROM = [1, 2, 3].reduce((out, c) => {
  const span = 1 << (2 * c), can = new Uint8Array(256);
  for (let b = 0; b < 256; b += span) for (let x = b; x < b + span; x++) if (printable(x)) { can[b] = 1; break; }
  out[c] = can;
  return out;
}, [] as Uint8Array[]);
const hexValue = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);

/**
 * Where an encoded run still being written at the end of `text` starts (text.length if none): a trailing run of
 * alphabet characters (with up to two `=`) that could still become one `encodedRuns` reports and `decode` accepts —
 * not over 258 characters, and every complete base64 quad (or, while the run is all hex, every
 * hex pair) so far decoding to printable bytes, and among its first 24 characters the high bits a quad's characters so
 * far fix allowing a printable next byte. Ordinary words fail the quad test within their first four letters.
 */
export function encodedLiveStart(text: string): number {
  const own = runLiveStart(text), n = text.length;
  // The run may be a wrapped line (wrappedEnds): the lines above it are held with it, also while the next line has
  // not begun (the text ends with its line break).
  if (n && text.charCodeAt(n - 1) === 13) return Math.min(own, wrappedAbove(text + "\n", n + 1, 0)); // \r of a \r\n
  const ls = n ? text.lastIndexOf("\n", n - 1) + 1 : 0;
  if (ls === n) return Math.min(own, wrappedAbove(text, n, 0));
  return own === ls ? Math.min(own, wrappedAbove(text, ls, n - ls)) : own;
}

/**
 * The start of the wrapped run the line starting at `ls` (`len` characters so far) may continue (wrappedEnds), or
 * text.length: the lines above end in alphabet runs as long as each other, a multiple of 4 and at least MIN, not
 * shorter than `len`, decoding to printable bytes; each fills its line but the topmost (text may come before it on its
 * line); MAX characters at most with the line being written.
 */
function wrappedAbove(text: string, ls: number, len: number): number {
  const n = text.length;
  let width = 0, start = n, lineStart = ls;
  while (lineStart > 0 && text.charCodeAt(lineStart - 1) === 10) {
    const end = lineStart - 1 - (text.charCodeAt(lineStart - 2) === 13 ? 1 : 0);
    let r = end;
    while (r > 0 && end - r <= MAX && isAlphabet(text.charCodeAt(r - 1))) r--;
    const w = end - r;
    if (width ? w !== width : w < MIN || w % 4 || w < len) break;
    if (ls + len - r > MAX || !quadsPrintable(text, r, end)) break;
    width = w; start = r;
    if (r > 0 && text.charCodeAt(r - 1) !== 10) break; // text before it on its line: the topmost
    lineStart = r;
  }
  return start;
}

/** Every base64 quad of [s, e) (a multiple of 4 long) decodes to printable bytes. */
function quadsPrintable(text: string, s: number, e: number): boolean {
  for (let k = s; k + 4 <= e; k += 4) {
    const v = (B64[text.charCodeAt(k)]! << 18) | (B64[text.charCodeAt(k + 1)]! << 12) | (B64[text.charCodeAt(k + 2)]! << 6) | B64[text.charCodeAt(k + 3)]!;
    if (v < 0 || !printable((v >> 16) & 255) || !printable((v >> 8) & 255) || !printable(v & 255)) return false;
  }
  return true;
}

/** encodedLiveStart for the run at the text's end alone. */
function runLiveStart(text: string): number {
  const n = text.length;
  let e = n, pads = 0;
  while (pads < 2 && e > 0 && text.charCodeAt(e - 1) === 61) { e--; pads++; }
  let s = e;
  while (s > 0 && e - s <= MAX && isAlphabet(text.charCodeAt(s - 1))) s--;
  if (s === e || e - s + pads > MAX) return n;
  // After `=` the run cannot grow: shorter than a reported run, it never will be one.
  if (pads && e - s < MIN) return n;
  const k = s + ((e - s) & ~3); // the quad still being written starts here
  let base64 = quadsPrintable(text, s, k);
  // A quad still being written already fixes its first byte with two characters and its second with three: one
  // that is not printable can never decode (whatever comes next), so the run is no encoded secret.
  if (base64 && e - k >= 2) {
    const v0 = B64[text.charCodeAt(k)]!, v1 = B64[text.charCodeAt(k + 1)]!;
    base64 = printable(((v0 << 2) | (v1 >> 4)) & 255) && (e - k < 3 || printable((((v1 & 15) << 4) | (B64[text.charCodeAt(k + 2)]! >> 2)) & 255));
  }
  // A quad among a run's first 24 characters is decoded whole (a run is reported from 24 on; a later quad may be cut
  // short where the run ends, its last byte or two then not decoded): the high bits of its next byte, fixed by the
  // characters so far (6 by one, 4 by two, 2 by three), must leave a printable value possible.
  if (base64 && e > k && k - s + 4 <= MIN) {
    const v = B64[text.charCodeAt(e - 1)]!, fixed = e - k === 1 ? v << 2 : e - k === 2 ? (v & 15) << 4 : (v & 3) << 6;
    base64 = PRINTABLE_FROM[e - k]![fixed]! === 1;
  }
  if (base64) return s;
  if (pads) return n;
  for (let k = s + hexPrefix(text, s, e); k < e; k += 2) {
    const hi = hexValue(text.charCodeAt(k));
    if (hi < 0) return n;
    if (k + 1 < e) {
      const lo = hexValue(text.charCodeAt(k + 1));
      if (lo < 0 || !printable(hi * 16 + lo)) return n;
    } else if (hi !== 0 && (hi < 2 || hi > 7)) return n; // a last lone digit: no second digit makes 1x or 8x-fx printable
  }
  return s;
}

/** 2 where a run starts with a hex literal's `0x` (its digits follow), else 0. */
const hexPrefix = (text: string, s: number, e: number) => (e - s > 2 && text.charCodeAt(s) === 48 && (text.charCodeAt(s + 1) | 32) === 120 ? 2 : 0);

/**
 * The decoded text of an encoded run, when it decodes to at least 16 bytes of printable ASCII; undefined otherwise.
 * Hex may carry a `0x` prefix (it read as base64 before, and decoded to nothing).
 */
export function decode(run: string): string | undefined {
  if (run.includes("\n")) run = run.replace(/\r?\n/g, ""); // a wrapped run (wrappedEnds)
  const hex = /^(?:0x)?((?:[0-9a-f]{2})+)$/i.exec(run);
  const bytes = hex ? Buffer.from(hex[1]!, "hex") : Buffer.from(run, "base64");
  if (bytes.length < 16) return undefined;
  for (const b of bytes) if (b < 0x20 ? b !== 9 && b !== 10 && b !== 13 : b > 0x7e) return undefined;
  return bytes.toString("latin1");
}
