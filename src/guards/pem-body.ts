/**
 * A PEM private key's body written without its BEGIN line: base64 lines and then the END armor. That is how a model
 * continues a key it was handed the start of ("-----BEGIN RSA PRIVATE KEY-----\nMIIE…" as the prompt): its output
 * never holds the opening long-secrets.ts cuts from, but the END armor proves the lines above it were a private key.
 * The response scanner redacts the block of base64 lines right above an END armor line, through that line; a stream
 * holds such a block back (lines of up to 80 base64 characters) until a line that is neither base64 nor armor shows it
 * ends; the scanner releases a block held over 8,192 characters (HOLD_CAP).
 * A body cut off before its END line (max_tokens) has nothing that marks it as a key and goes out.
 */

/** The END armor line as long-secrets.ts reads it, without its look-ahead: at the text's end it may be complete. */
const END = /(?<!-)-{3,}[ \t]*END[ A-Z0-9_-]{0,100}PRIVATE[ \t]*KEY(?:[ \t]*BLOCK)?[ \t]*-{3,}/g;
/** At least one body line this long: a short word on the line above an END armor is not a key's body. */
const MIN_LINE = 16;
/** Longest body line (PEM writes 64 characters, OpenSSH 70): a longer run is no key's body, and is not held for one. */
const MAX_LINE = 80;
/** The furthest back a body is looked for (an RSA-16384 body is ~12 KB; bodies here are bounded by the stream's hold). */
const MAX_BODY = 16384;

/** Where the line holding position i starts (JS's lastIndexOf reads a negative start as 0: not used below 1). */
const lineStartAt = (text: string, i: number) => (i <= 0 ? 0 : text.lastIndexOf("\n", i - 1) + 1);
const isB64 = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47 || c === 61;
const isBlank = (c: number) => c === 32 || c === 9 || c === 13;
const isArmor = (c: number) => c === 45 || c === 95 || isBlank(c) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57);

/** Where the base64 characters of the line [s, e) start, if it is one: base64 between blanks (\r included); else -1. */
function b64Line(text: string, s: number, e: number): { start: number; length: number } | undefined {
  while (s < e && isBlank(text.charCodeAt(s))) s++;
  while (e > s && isBlank(text.charCodeAt(e - 1))) e--;
  if (s === e || e - s > MAX_LINE) return undefined;
  for (let i = s; i < e; i++) if (!isB64(text.charCodeAt(i))) return undefined;
  return { start: s, length: e - s };
}

/**
 * The start of the block of base64 lines ending at the line break before `lineStart` (complete lines only; the
 * text's start counts as a line start), or undefined when there is none with a line of MIN_LINE or more.
 */
function blockAbove(text: string, lineStart: number, longest = 0): number | undefined {
  let start: number | undefined, e = lineStart;
  while (e > 0 && lineStart - e < MAX_BODY && text.charCodeAt(e - 1) === 10) {
    const s = lineStartAt(text, e - 1);
    const line = b64Line(text, s, e - 1);
    if (!line) break;
    start = line.start;
    longest = Math.max(longest, line.length);
    e = s;
  }
  return start !== undefined && longest >= MIN_LINE ? start : undefined;
}

/** Each body found with its END armor line, as [start, end): from the body's first base64 character through the armor. */
export function pemBodies(text: string): [number, number][] {
  if (!text.includes("END")) return [];
  const out: [number, number][] = [];
  END.lastIndex = 0;
  for (let m = END.exec(text); m; m = END.exec(text)) {
    const lineStart = lineStartAt(text, m.index);
    let s = lineStart;
    while (s < m.index && isBlank(text.charCodeAt(s))) s++;
    if (s !== m.index) continue; // armor not at its line's start: not a PEM block's end
    const start = blockAbove(text, lineStart);
    if (start !== undefined) out.push([start, m.index + m[0].length]);
  }
  return out;
}

/**
 * Where a body still being written at the text's end starts (text.length if none): complete base64 lines at the end,
 * and after them a line being written that may still become a body line or the END armor (base64 characters; or
 * dashes and armor letters). A line being written alone counts once it is MIN_LINE base64 characters long (shorter,
 * it is a word being written, which a stream need not hold for this).
 */
export function pemBodyLiveStart(text: string): number {
  const n = text.length;
  const lineStart = lineStartAt(text, n);
  let s = lineStart, e = n;
  while (e > s && isBlank(text.charCodeAt(e - 1))) e--;
  while (s < e && isBlank(text.charCodeAt(s))) s++;
  let partial = 0;
  if (s < e && text.charCodeAt(s) === 45) { // the END armor being written: dashes, capitals, digits, blanks; a short line
    if (e - s > 140) return n;
    for (let i = s; i < e; i++) if (!isArmor(text.charCodeAt(i))) return n;
  } else {
    if (e - s > MAX_LINE) return n;
    for (let i = e; i > s; i--) if (!isB64(text.charCodeAt(i - 1))) return n; // from the end: prose stops at its last word
    partial = e - s;
  }
  const above = blockAbove(text, lineStart, partial);
  if (above !== undefined) return above;
  return partial >= MIN_LINE ? s : n;
}
