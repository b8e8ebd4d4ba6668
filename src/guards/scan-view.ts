/**
 * What the response scanner matches on: the text as a reader sees it. A secret
 * written in fullwidth (ＡＫＩＡ…), with zero-width characters inside, or spaced
 * out one character at a time ("A K I A …") reads the same as the plain one, so
 * rules run on a view where those differences are gone, and every finding is
 * mapped back to the original characters it covers. Plain ASCII prose (nearly
 * all model output) needs no view: one native regex test decides that.
 */
import { INVISIBLE_CHAR } from "./normalise";

/** Eight or more single letters/digits separated by single spaces (quotes or brackets may close it in). */
const SPACED_RUN = /(?<![A-Za-z0-9])[A-Za-z0-9](?:[ \t][A-Za-z0-9]){7,}(?![A-Za-z0-9])/g;
const NEEDS_VIEW = /[^\x00-\x7f]|(?<![A-Za-z0-9])[A-Za-z0-9](?:[ \t][A-Za-z0-9]){7}/;

export interface ScanView {
  text: string;
  /** Original offset of view char i, and the original offset just after it; null when the view is the text. */
  from: Int32Array | null;
  to: Int32Array | null;
}

export function scanView(text: string): ScanView {
  if (!NEEDS_VIEW.test(text)) return { text, from: null, to: null };
  const drop = new Uint8Array(text.length); // spaces inside spaced-out runs
  for (const m of text.matchAll(SPACED_RUN)) {
    for (let i = m.index!; i < m.index! + m[0].length; i++) if (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9) drop[i] = 1;
  }
  let out = "";
  const from: number[] = [], to: number[] = [];
  for (let i = 0; i < text.length;) {
    const code = text.codePointAt(i)!;
    const size = code > 0xffff ? 2 : 1;
    if (drop[i]) { i += size; continue; }
    let piece: string;
    if (code < 0x80) piece = text[i]!;
    else {
      const ch = String.fromCodePoint(code);
      piece = INVISIBLE_CHAR.test(ch) ? "" : ch.normalize("NFKC");
    }
    for (let k = 0; k < piece.length; k++) { from.push(i); to.push(i + size); }
    out += piece;
    i += size;
  }
  return { text: out, from: Int32Array.from(from), to: Int32Array.from(to) };
}

/** A span [start, end) of the view, in original offsets. */
export function toOriginal(v: ScanView, start: number, end: number): [number, number] {
  if (!v.from || !v.to) return [start, end];
  return [v.from[start]!, end > start ? v.to[end - 1]! : v.from[start]!];
}
