/**
 * What the response scanner matches on: the text as a reader sees it. A secret
 * written in fullwidth (ＡＫＩＡ…), with zero-width characters inside, in
 * Cyrillic or Greek look-alike letters (АКІА…, ВЕGIN PRIVATE KEY), or spaced
 * out one character at a time ("A K I A …") reads the same as the plain one,
 * so rules run on a view where those differences are gone, and every finding
 * is mapped back to the original characters it covers. Spaced-out runs are
 * found on the folded view, so "Ａ\u3000Ｋ\u3000Ｉ…" joins like "A K I…". Plain
 * ASCII prose (nearly all model output) needs no view: one native test and a
 * skipping probe for spaced-out runs decide that.
 *
 * JSON string escapes are read as what they stand for: a JSON answer (json_object, json_schema, a tool call's
 * arguments) is text its reader decodes, so `A\tK\tI…` is a spaced-out run and `\"` a quote. An escape still being
 * written at the end of the text (`\`, `\u00`) is not in the view yet (pendingEscape: a stream holds it back).
 */
import { accentless, INVISIBLE_CHAR, LOOKALIKES } from "./normalise";
import { isHigh, isLow } from "./regex-chars";

/**
 * Whether every code unit is ASCII: its UTF-8 form is then as long as it is (any other code unit takes two bytes or
 * more). Native and vectorised: a regex test for a non-ASCII character costs ten times as much on long text.
 */
const isAscii = (text: string) => Buffer.byteLength(text, "utf8") === text.length;

export interface ScanView {
  text: string;
  /** The text the view was made of. */
  source: string;
  /** Original offset of view char i, and the original offset just after it; null when the view is the text. */
  from: Int32Array | null;
  to: Int32Array | null;
  /**
   * Spaced-out runs were joined: the view of a character then depends on its neighbours (more text can join or
   * split a run), not on the character alone, so text appended to `source` may change the view of what is there.
   */
  spaced: boolean;
  /** The view before its spaced-out runs were joined (every character read on its own); null when none were. */
  unjoined: ScanView | null;
  /** Where each joined spaced-out run stands in `text`, [start, end); absent when none were joined. */
  runs?: [number, number][];
}

/**
 * Character classes of the view's code units, looked up rather than compared: range tests branch on every character.
 * ALNUM: an ASCII letter or digit; PUNCT: `_` or `-`, which join a run when they stand alone (tokens are full of them:
 * ghp_…, glpat-…) but never make a neighbouring letter part of a word; GAP: whitespace. The view has folded fullwidth
 * and look-alike letters to ASCII and most Unicode spaces (no-break, thin, ideographic …) to U+0020 already; the
 * spaces NFKC leaves alone (U+0085, U+1680) are gaps too.
 */
const ALNUM = 1, GAP = 2, PUNCT = 4;
const CLASS = new Uint8Array(65536);
for (let c = 0; c < 128; c++) if (/[A-Za-z0-9]/.test(String.fromCharCode(c))) CLASS[c] = ALNUM;
CLASS[95] = CLASS[45] = PUNCT;
for (const c of [9, 10, 11, 12, 13, 32, 0x85, 0xa0, 0x1680, 0x202f, 0x205f, 0x3000]) CLASS[c] = GAP;
for (let c = 0x2000; c <= 0x200a; c++) CLASS[c] = GAP;

/**
 * Most whitespace characters (as read) between two characters of a spaced-out run: "A  K", "A\r\nK", "A\n\nK" join,
 * a wider gap (a table's columns, an indented block) ends the run.
 */
export const GAP_MAX = 4;

const cls = (t: string, i: number) => CLASS[t.charCodeAt(i)] ?? 0; // out of range: NaN → undefined → 0
/** A run's character: a letter, digit, `_` or `-` with no letter or digit right before or after it. */
const single = (t: string, i: number) => (cls(t, i) & (ALNUM | PUNCT)) !== 0 && cls(t, i - 1) !== ALNUM && cls(t, i + 1) !== ALNUM;
/** The run character before the gap (1 to GAP_MAX characters) that ends at i - 1; -1 if there is none. */
function before(t: string, i: number): number {
  let k = i - 1;
  for (const stop = i - 1 - GAP_MAX; k > stop && cls(t, k) === GAP;) k--;
  return k < i - 1 && single(t, k) ? k : -1;
}
/** The run character after the gap (1 to GAP_MAX characters) that starts at i + 1; -1 if there is none. */
function after(t: string, i: number): number {
  let k = i + 1;
  for (const stop = i + 1 + GAP_MAX; k < stop && cls(t, k) === GAP;) k++;
  return k > i + 1 && single(t, k) ? k : -1;
}

/**
 * Runs of eight or more single characters separated by gaps of 1 to GAP_MAX whitespace characters ("A K I A …",
 * "A  K  I  A …", one a line), as [start, end) pairs of `text`, which is a view (already folded: fullwidth and
 * look-alike letters read as ASCII, Unicode spaces as U+0020, invisible characters gone). A run spans at least 15
 * characters, so probing every 14th character finds each one; in prose most probes are rejected by their neighbours.
 */
export function spacedRuns(text: string): [number, number][] {
  const runs: [number, number][] = [];
  const n = text.length;
  for (let p = 0; p < n; p += 14) {
    // Quick rejects, read inline: inside a word, or a gap between two words (nearly every probe in prose). This loop
    // is most of a one-shot scan of plain text.
    const c = CLASS[text.charCodeAt(p)]!;
    let q: number;
    if (c === ALNUM || c === PUNCT) {
      if ((p > 0 && CLASS[text.charCodeAt(p - 1)] === ALNUM) || (p + 1 < n && CLASS[text.charCodeAt(p + 1)] === ALNUM)) continue;
      q = p;
    } else if (c === GAP) {
      if (p > 1 && CLASS[text.charCodeAt(p - 1)] === ALNUM && CLASS[text.charCodeAt(p - 2)] === ALNUM
        && p + 2 < n && CLASS[text.charCodeAt(p + 1)] === ALNUM && CLASS[text.charCodeAt(p + 2)] === ALNUM) continue; // "word word"
      q = before(text, p + 1);
      if (q < 0 && (q = after(text, p - 1)) < 0) continue;
    } else continue;
    for (let k; (k = before(text, q)) >= 0;) q = k; // back to the run's first character
    let e = q, count = 1;
    for (let k; (k = after(text, e)) >= 0; count++) e = k;
    if (count >= 8) { runs.push([q, e + 1]); p = e; } // the next run starts after e: the next probe is e + 14
  }
  return runs;
}

const identity = (text: string): ScanView => ({ text, source: text, from: null, to: null, spaced: false, unjoined: null });
/** Plain text: ASCII with no escape in it, its own view. */
const plain = (text: string) => isAscii(text) && !text.includes("\\");

/** What the one-letter JSON escapes stand for (`\b` a backspace, which separates words as a raw one does). */
const ESCAPED: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", t: "\t", n: "\n", r: "\r", f: "\f", b: "\b" };
const HEX4 = /^[0-9a-fA-F]{4}$/;

/** Whether the backslash at `i` starts an escape (is not itself escaped by an odd run of backslashes before it). */
function escapes(text: string, i: number): boolean {
  let k = i;
  while (k > 0 && text.charCodeAt(k - 1) === 92) k--;
  return (i - k) % 2 === 0;
}
const HIGH_ESCAPE = /^\\u[dD][89abAB][0-9a-fA-F]{2}$/;

/**
 * Where the text's last character is still being written, so more text may change how it reads (a stream holds it
 * back; the view leaves it out): a lone high surrogate, or a JSON escape not yet whole: `\`, `\u` with fewer than
 * four hex digits, or a high-surrogate `\uD8xx` that its low half (`\uDCxx`) may still follow. text.length if none.
 */
export function pendingEscape(text: string): number {
  const n = text.length;
  if (n && isHigh(text.charCodeAt(n - 1))) return n - 1;
  const from = text.lastIndexOf("\\", n - 1);
  if (from < 0 || from < n - 6 || !escapes(text, from)) return n; // `\uD835`, six, is the longest that waits
  const rest = text.slice(from + 1);
  const open = rest === "" || (rest[0] === "u" && rest.length < 5 && /^u[0-9a-fA-F]*$/.test(rest));
  // a whole high half at the end waits for its low half; an unfinished escape right after one waits with it
  if (!open) return HIGH_ESCAPE.test(text.slice(from)) ? from : n;
  return from >= 6 && HIGH_ESCAPE.test(text.slice(from - 6, from)) && escapes(text, from - 6) ? from - 6 : from;
}

/** The escape at `i` (a backslash): what it reads as and how many code units it spans; undefined if none is complete there. */
function escapeAt(text: string, i: number): { piece: string; size: number } | undefined {
  const c = text[i + 1];
  if (c === undefined) return undefined;
  if (Object.hasOwn(ESCAPED, c)) return { piece: ESCAPED[c]!, size: 2 };
  if (c !== "u" || !HEX4.test(text.slice(i + 2, i + 6))) return undefined;
  let code = parseInt(text.slice(i + 2, i + 6), 16), size = 6;
  if (isHigh(code) && text.startsWith("\\u", i + 6) && HEX4.test(text.slice(i + 8, i + 12))) {
    const low = parseInt(text.slice(i + 8, i + 12), 16);
    if (isLow(low)) { code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00); size = 12; }
  }
  return { piece: code < 0x80 ? String.fromCharCode(code) : folded(code), size };
}

/** The view with every character read on its own (folded, escapes decoded), spaced-out runs not joined yet. */
function foldView(text: string): ScanView {
  if (plain(text)) return identity(text);
  const end = pendingEscape(text);
  let out = "";
  // NFKC can make one character up to 18 (U+FDFA); the arrays grow only in that rare case.
  let from = new Int32Array(text.length + 8), to = new Int32Array(text.length + 8), n = 0;
  for (let i = 0; i < end;) {
    const code = text.codePointAt(i)!;
    const escape = code === 92 ? escapeAt(text, i) : undefined;
    const size = escape ? escape.size : code > 0xffff ? 2 : 1;
    const piece = escape ? escape.piece : code < 0x80 ? text[i]! : folded(code);
    if (n + piece.length > from.length) {
      const grow = (a: Int32Array) => { const b = new Int32Array(a.length * 2 + piece.length); b.set(a); return b; };
      from = grow(from); to = grow(to);
    }
    for (let k = 0; k < piece.length; k++) { from[n] = i; to[n++] = i + size; }
    out += piece;
    i += size;
  }
  return { text: out, source: text, from: from.subarray(0, n), to: to.subarray(0, n), spaced: false, unjoined: null };
}

/** `v` (a folded view) with the gaps inside its spaced-out runs dropped; `v` itself when it has none. */
function joinRuns(v: ScanView): ScanView {
  const runs = spacedRuns(v.text);
  if (!runs.length) return v;
  const t = v.text, from = new Int32Array(t.length), to = new Int32Array(t.length);
  let out = "", n = 0, last = 0;
  const joined: [number, number][] = [];
  const keep = (s: number, e: number) => {
    out += t.slice(s, e);
    for (let i = s; i < e; i++) { from[n] = v.from ? v.from[i]! : i; to[n++] = v.to ? v.to[i]! : i + 1; }
  };
  for (const [s, e] of runs) {
    keep(last, s);
    const at = n;
    for (let i = s; i < e; i++) if (CLASS[t.charCodeAt(i)] !== GAP) keep(i, i + 1);
    joined.push([at, n]);
    last = e;
  }
  keep(last, t.length);
  return { text: out, source: v.source, from: from.subarray(0, n), to: to.subarray(0, n), spaced: true, unjoined: v, runs: joined };
}

export function scanView(text: string): ScanView {
  return joinRuns(foldView(text));
}

/**
 * How the view reads one non-ASCII character: nothing if invisible, else its NFKC form, as its look-alike's
 * letter if it has one. Remembered per code point: a stream's view is rebuilt at every push, and NFKC and the
 * invisible-character test cost more than the rest of the view together.
 */
const FOLDS = new Map<number, string>();
/** Most folds remembered: a text of many distinct characters cannot grow the map without bound. */
const FOLDS_MAX = 4096;
function folded(code: number): string {
  let piece = FOLDS.get(code);
  if (piece === undefined) {
    const ch = String.fromCodePoint(code);
    // A C1 control (but NEL, a line break) reads as nothing, and so do accents: a mark on its own is dropped, an
    // accented letter reads as its base. One combining accent (`PRI\u0301VATE`), an `Í` or a CSI (U+009B) inside a
    // token hid it from every rule, a PEM's armor and a JWT's start included (red-team run).
    const nfkc = INVISIBLE_CHAR.test(ch) || (code <= 0x9f && code !== 0x85) ? "" : ch.normalize("NFKC");
    const base = nfkc.length ? accentless(nfkc) : nfkc; // every mark, those at U+3000 and above too (attack on the fix)
    piece = LOOKALIKES[ch] ?? LOOKALIKES[nfkc] ?? LOOKALIKES[base] ?? base; // the character itself first: NFKC makes lunate sigma Ϲ a Σ
    if (FOLDS.size >= FOLDS_MAX) FOLDS.clear();
    FOLDS.set(code, piece);
  }
  return piece;
}

/**
 * scanView(text), where `text` is `prev.source` without its first `dropped` code units and with more appended (a
 * stream's held text: released text leaves its front, new text joins its end): the same view, its folded characters
 * taken from `prev`'s (before its runs were joined) and the new text's, then its spaced-out runs joined afresh (more
 * text can join or split a run); from the whole text when a surrogate pair is split at either seam.
 */
export function extendView(prev: ScanView, dropped: number, text: string): ScanView {
  const kept = prev.source.length - dropped, seamAt = (t: string, i: number) => isHigh(t.charCodeAt(i - 1)) && isLow(t.charCodeAt(i));
  if (kept < 0 || (dropped > 0 && seamAt(prev.source, dropped)) || isHigh(prev.source.charCodeAt(prev.source.length - 1))) return scanView(text);
  // an escape may span either seam (cut at the front, or still being written at the end): read the whole text again
  const nearEscape = (i: number) => { const b = prev.source.lastIndexOf("\\", i); return b >= 0 && b >= i - 11; };
  if ((dropped > 0 && nearEscape(dropped)) || nearEscape(prev.source.length - 1)) return scanView(text);
  if (plain(text)) return joinRuns(identity(text));
  const base = prev.unjoined ?? prev, added = foldView(text.slice(kept));
  const v0 = base.from ? viewStart(base.from, dropped) : dropped, vn = base.text.length - v0, an = added.text.length;
  const from = new Int32Array(vn + an), to = new Int32Array(vn + an);
  for (let i = 0; i < vn; i++) { from[i] = (base.from ? base.from[v0 + i]! : v0 + i) - dropped; to[i] = (base.to ? base.to[v0 + i]! : v0 + i + 1) - dropped; }
  for (let i = 0; i < an; i++) { from[vn + i] = (added.from ? added.from[i]! : i) + kept; to[vn + i] = (added.to ? added.to[i]! : i + 1) + kept; }
  return joinRuns({ text: base.text.slice(v0) + added.text, source: text, from, to, spaced: false, unjoined: null });
}

/** The first view position whose character comes from original offset `offset` or later. */
function viewStart(from: Int32Array, offset: number): number {
  let lo = 0, hi = from.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (from[mid]! < offset) lo = mid + 1; else hi = mid; }
  return lo;
}

/** A span [start, end) of the view, in original offsets. */
export function toOriginal(v: ScanView, start: number, end: number): [number, number] {
  if (!v.from || !v.to) return [start, end];
  return [at(v, start), end > start ? v.to[end - 1]! : at(v, start)];
}

/** The original offset of view position i (the source's length at the view's end). */
export function at(v: ScanView, i: number): number {
  if (!v.from) return i;
  return i < v.from.length ? v.from[i]! : v.source.length;
}

/**
 * Length of the character at `i` when it reads as one of the characters `isChar` accepts, or is invisible;
 * 0 otherwise. How a dropped secret's remaining body is recognised however it is written.
 */
export function readsAs(text: string, i: number, isChar: (c: number) => boolean): number {
  if (i >= text.length) return 0;
  const c = text.charCodeAt(i);
  if (c === 92) { // a JSON escape reads as its character; one still being written at the end counts as one of them
    const e = escapeAt(text, i);
    if (!e || pendingEscape(text) <= i) return 0; // not whole yet: the caller holds it back (what it reads as decides)
    return e.piece.length === 1 && isChar(e.piece.charCodeAt(0)) ? e.size : 0;
  }
  if (c < 0x80) return isChar(c) ? 1 : 0;
  const code = text.codePointAt(i)!;
  const size = code > 0xffff ? 2 : 1;
  const like = folded(code);
  if (like === "") return size; // invisible (NFKC of a visible character is never empty)
  return like.length === 1 && isChar(like.charCodeAt(0)) ? size : 0;
}

/**
 * A spaced-out run still being written at the end of the text `v` is the view of ("… A K I", "… A\u00a0K\u00a0I ",
 * "… A\nK\n"): where it starts (an original offset), and the text as the view will read it should the run reach the
 * eight characters that make `spacedRuns` join it (its gaps gone). Undefined when the text does not end in one.
 */
export function trailingSpacedRun(v: ScanView): { start: number; joined: string } | undefined {
  const u = v.unjoined ?? v, t = u.text;
  let i = t.length - 1;
  for (const stop = i - GAP_MAX; i > stop && cls(t, i) === GAP;) i--; // "… A K " : the next letter continues the run
  if (!(cls(t, i) & (ALNUM | PUNCT)) || cls(t, i - 1) === ALNUM) return undefined;
  let start = i;
  for (let k; (k = before(t, start)) >= 0;) start = k;
  const at0 = at(u, start);
  let joined = u.source.slice(0, at0);
  for (let k = start; k <= i; k++) if (CLASS[t.charCodeAt(k)] !== GAP) joined += u.from ? u.source.slice(u.from[k], u.to![k]) : t[k];
  return { start: at0, joined };
}
