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

/**
 * Maximal alphabet runs of at least 24 characters, each with up to two `=` after it, as [start, end) pairs;
 * a run right after `=` is the tail of a longer encoded text and is skipped, as are runs over 258 chars.
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
    if (e - s <= MAX && !(s > 0 && text.charCodeAt(s - 1) === 61)) runs.push([s, e]);
    p = runEnd + MIN; // the next run starts after runEnd
  }
  return runs;
}

/** The decoded text of an encoded run, when it decodes to at least 16 bytes of printable ASCII; undefined otherwise. */
export function decode(run: string): string | undefined {
  const bytes = /^(?:[0-9a-f]{2})+$/i.test(run) ? Buffer.from(run, "hex") : Buffer.from(run, "base64");
  if (bytes.length < 16) return undefined;
  for (const b of bytes) if (b < 0x20 ? b !== 9 && b !== 10 && b !== 13 : b > 0x7e) return undefined;
  return bytes.toString("latin1");
}
