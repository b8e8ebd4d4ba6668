import { skeleton } from "./normalise";

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * `text` without every stretch whose skeleton `pattern` matches (a pattern over normalise.ts's skeleton, as the
 * injection phrases are). A regex over the raw text cut nothing where the phrase was written with look-alike letters
 * or soft hyphens (`іgnоre previous instructions` in Cyrillic, `ig\u00ADnore`) although the skeleton matched, so
 * the phrase reached the model recorded as stripped. Here the skeleton is built grapheme by grapheme, each of its
 * characters knowing its grapheme, and a match removes the graphemes it was read from.
 */
export function stripBySkeleton(text: string, pattern: RegExp): string {
  // ASCII text is its characters (CR LF, one grapheme, folds to one space either way); text repeats few distinct
  // graphemes, so each one's skeleton is made once. Only a strip rule that found something comes here (a megabyte of
  // mixed scripts: ~0.4 s, ~0.15 s of ASCII).
  const parts = /^[\x00-\x7f]*$/.test(text) ? text.split("") : Array.from(graphemes.segment(text), (s) => s.segment);
  const known = new Map<string, string>();
  let skel = "";
  let owner = new Int32Array(text.length + 16); // skel's character k came from parts[owner[k]]
  for (let i = 0; i < parts.length; i++) {
    const g = parts[i]!;
    let s = known.get(g);
    if (s === undefined) known.set(g, s = skeleton(g));
    // One space for a run of separators, as the whole text's skeleton has.
    if (s.startsWith(" ") && skel.endsWith(" ")) s = s.slice(1);
    if (skel.length + s.length > owner.length) { const grown = new Int32Array(2 * (skel.length + s.length)); grown.set(owner); owner = grown; }
    owner.fill(i, skel.length, skel.length + s.length);
    skel += s;
  }
  const gone = new Uint8Array(parts.length);
  let found = false;
  for (const m of skel.matchAll(new RegExp(pattern.source, pattern.flags.replace("g", "") + "g"))) {
    if (!m[0].length) continue;
    for (let k = owner[m.index]!; k <= owner[m.index + m[0].length - 1]!; k++) gone[k] = 1;
    found = true;
  }
  return found ? parts.filter((_, i) => !gone[i]).join("") : text;
}
