/**
 * What the response scanner matches on: the text as a reader sees it. A secret
 * written in fullwidth (ＡＫＩＡ…), with zero-width characters inside, in
 * Cyrillic or Greek look-alike letters (АКІА…, ВЕGIN PRIVATE KEY), or spaced
 * out one character at a time ("A K I A …") reads the same as the plain one,
 * so rules run on a view where those differences are gone, and every finding
 * is mapped back to the original characters it covers. Plain ASCII prose
 * (nearly all model output) needs no view: one native regex test and a
 * skipping probe for spaced-out runs decide that.
 */
import { INVISIBLE_CHAR, LOOKALIKES } from "./normalise";

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
}

/** Character classes by code unit, looked up rather than compared: range tests branch on every character. */
const ALNUM = 1, GAP = 2;
const CLASS = new Uint8Array(65536);
for (let c = 0; c < 128; c++) CLASS[c] = /[A-Za-z0-9]/.test(String.fromCharCode(c)) ? ALNUM : c === 32 || c === 9 ? GAP : 0;

/**
 * Runs of eight or more single letters/digits separated by single spaces or tabs, not touching another
 * letter or digit at either end ("A K I A …"), as [start, end) pairs. A run spans at least 15 characters,
 * so probing every 14th character finds each one; in prose most probes are rejected by their neighbours.
 */
export function spacedRuns(text: string): [number, number][] {
  const runs: [number, number][] = [];
  const cls = (i: number) => CLASS[text.charCodeAt(i)] ?? 0; // out of range: NaN → undefined → 0
  /** A letter/digit standing alone between gaps (or a gap and a non-letter). */
  const single = (i: number) => cls(i) === ALNUM && cls(i - 1) !== ALNUM && cls(i + 1) !== ALNUM;
  const n = text.length;
  for (let p = 0; p < n; p += 14) {
    // Quick rejects: inside a word, or not a gap between two letters (nearly every probe in prose). Read inline,
    // in bounds: this loop is most of a one-shot scan of plain text.
    const c = CLASS[text.charCodeAt(p)]!;
    const before = p > 0 ? CLASS[text.charCodeAt(p - 1)]! : 0, after = p + 1 < n ? CLASS[text.charCodeAt(p + 1)]! : 0;
    if (c === ALNUM ? before === ALNUM || after === ALNUM : c !== GAP || before !== ALNUM || after !== ALNUM) continue;
    let q = c === ALNUM ? p : p - 1;
    if (!single(q)) { q = p + 1; if (!single(q)) continue; }
    while (cls(q - 1) === GAP && single(q - 2)) q -= 2; // back to the run's first letter
    let e = q, letters = 1;
    while (cls(e + 1) === GAP && single(e + 2)) { e += 2; letters++; }
    if (letters >= 8) { runs.push([q, e + 1]); p = e; } // the next run starts after e: the next probe is e + 14
  }
  return runs;
}

export function scanView(text: string): ScanView {
  const runs = spacedRuns(text);
  if (!runs.length && isAscii(text)) return { text, source: text, from: null, to: null, spaced: false };
  const drop = new Uint8Array(text.length); // the gaps inside spaced-out runs
  for (const [s, e] of runs) for (let i = s; i < e; i++) if (CLASS[text.charCodeAt(i)] === GAP) drop[i] = 1;
  let out = "";
  // NFKC can make one character up to 18 (U+FDFA); the arrays grow only in that rare case.
  let from = new Int32Array(text.length + 8), to = new Int32Array(text.length + 8), n = 0;
  for (let i = 0; i < text.length;) {
    const code = text.codePointAt(i)!;
    const size = code > 0xffff ? 2 : 1;
    if (drop[i]) { i += size; continue; }
    const piece = code < 0x80 ? text[i]! : folded(code);
    if (n + piece.length > from.length) {
      const grow = (a: Int32Array) => { const b = new Int32Array(a.length * 2 + piece.length); b.set(a); return b; };
      from = grow(from); to = grow(to);
    }
    for (let k = 0; k < piece.length; k++) { from[n] = i; to[n++] = i + size; }
    out += piece;
    i += size;
  }
  return { text: out, source: text, from: from.subarray(0, n), to: to.subarray(0, n), spaced: runs.length > 0 };
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
    const nfkc = INVISIBLE_CHAR.test(ch) ? "" : ch.normalize("NFKC");
    piece = LOOKALIKES[nfkc] ?? nfkc;
    if (FOLDS.size >= FOLDS_MAX) FOLDS.clear();
    FOLDS.set(code, piece);
  }
  return piece;
}

/**
 * scanView(text), where `text` is `prev.source` without its first `dropped` code units and with more appended (a
 * stream's held text: released text leaves its front, new text joins its end): the same view, made from `prev`'s
 * and the new text's alone when neither joins spaced-out runs (then each character reads on its own) and no
 * surrogate pair is split at either seam; from the whole text otherwise.
 */
export function extendView(prev: ScanView, dropped: number, text: string): ScanView {
  const kept = prev.source.length - dropped, seamAt = (t: string, i: number) => isHigh(t.charCodeAt(i - 1)) && isLow(t.charCodeAt(i));
  if (prev.spaced || kept < 0 || (dropped > 0 && seamAt(prev.source, dropped)) || isHigh(prev.source.charCodeAt(prev.source.length - 1))) return scanView(text);
  if (spacedRuns(text).length) return scanView(text);
  if (isAscii(text)) return { text, source: text, from: null, to: null, spaced: false };
  const added = scanView(text.slice(kept));
  if (added.spaced) return scanView(text);
  const v0 = prev.from ? viewStart(prev.from, dropped) : dropped, vn = prev.text.length - v0, an = added.text.length;
  const from = new Int32Array(vn + an), to = new Int32Array(vn + an);
  for (let i = 0; i < vn; i++) { from[i] = (prev.from ? prev.from[v0 + i]! : v0 + i) - dropped; to[i] = (prev.to ? prev.to[v0 + i]! : v0 + i + 1) - dropped; }
  for (let i = 0; i < an; i++) { from[vn + i] = (added.from ? added.from[i]! : i) + kept; to[vn + i] = (added.to ? added.to[i]! : i + 1) + kept; }
  return { text: prev.text.slice(v0) + added.text, source: text, from, to, spaced: false };
}

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff, isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;
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
  if (c < 0x80) return isChar(c) ? 1 : 0;
  const code = text.codePointAt(i)!;
  const size = code > 0xffff ? 2 : 1;
  const like = folded(code);
  if (like === "") return size; // invisible (NFKC of a visible character is never empty)
  return like.length === 1 && isChar(like.charCodeAt(0)) ? size : 0;
}

/**
 * A run of single letters/digits separated by single spaces or tabs that is still being written at the end of
 * `text` ("… A K I", "… A K I A "): where it starts, and the text as the view will read it should the run reach
 * the eight letters that make `spacedRuns` join it (its gaps gone). Undefined when the text does not end in one.
 */
export function trailingSpacedRun(text: string): { start: number; joined: string } | undefined {
  const cls = (i: number) => CLASS[text.charCodeAt(i)] ?? 0;
  let i = text.length - 1;
  if (cls(i) === GAP) i--; // "… A K " : the next letter continues the run
  if (cls(i) !== ALNUM || cls(i - 1) === ALNUM) return undefined;
  let start = i;
  while (cls(start - 1) === GAP && cls(start - 2) === ALNUM && cls(start - 3) !== ALNUM) start -= 2;
  let letters = "";
  for (let k = start; k <= i; k += 2) letters += text[k];
  return { start, joined: text.slice(0, start) + letters };
}
