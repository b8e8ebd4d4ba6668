/**
 * "Could this still become a match?" for the response scanner's rules. From a rule's regex we build its prefix
 * regex: it matches every string that is the beginning of some match of the rule (the whole match included),
 * anchored at the end of the text. Its leftmost match in a stream's held-back tail is the earliest position
 * from which more text could still complete (or change) a finding; everything before it is final and may be
 * released. The transform is exact where it can be and errs towards holding more where it cannot:
 *  - a lookahead reads text that may not have arrived: dropped (always true);
 *  - \b and \B at the end of the text depend on the next character: `(?:\b|$)`;
 *  - lookbehinds read only text that is already there: kept as they are.
 * Patterns with back-references (none of ours) are refused: the caller then holds back conservatively.
 */

import { CharSet, isHigh, isLow } from "./regex-chars";

type Node =
  | { t: "atom"; src: string } // one character: a literal, an escape, a class, `.`
  | { t: "assert"; src: string } // zero-width, determined by text already seen (^, lookbehind) or made lenient
  | { t: "seq"; items: Node[] }
  | { t: "alt"; alts: Node[] }
  | { t: "rep"; body: Node; min: number; max: number };

/** Parses the subset of JavaScript regex syntax the rules use; throws on anything it does not understand. */
function parse(src: string, unicode: boolean, lookbehinds: boolean): Node {
  let i = 0;
  const fail = (why: string): never => { throw new Error(`${why} at ${i} in /${src}/`); };

  function alt(): Node {
    const alts: Node[] = [seq()];
    while (src[i] === "|") { i++; alts.push(seq()); }
    return alts.length === 1 ? alts[0]! : { t: "alt", alts };
  }

  function seq(): Node {
    const items: Node[] = [];
    while (i < src.length && src[i] !== "|" && src[i] !== ")") items.push(quantified(atom()));
    return { t: "seq", items };
  }

  function quantified(node: Node): Node {
    for (;;) {
      const c = src[i];
      let min: number, max: number;
      if (c === "*") { min = 0; max = Infinity; i++; }
      else if (c === "+") { min = 1; max = Infinity; i++; }
      else if (c === "?") { min = 0; max = 1; i++; }
      else if (c === "{") {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i));
        if (!m) return node; // a literal "{" (only outside unicode mode; the atom parser took it)
        min = Number(m[1]); max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
        i += m[0].length;
      } else return node;
      if (src[i] === "?") i++; // lazy: which match is found differs, whether one exists does not
      if (node.t === "assert") fail("quantified assertion");
      node = { t: "rep", body: node, min, max };
    }
  }

  function atom(): Node {
    const start = i, c = src[i]!;
    if (c === "(") {
      let look = false;
      if (src.startsWith("(?:", i)) i += 3;
      else if (src.startsWith("(?=", i) || src.startsWith("(?!", i)) { i += 3; look = true; }
      else if (src.startsWith("(?<=", i) || src.startsWith("(?<!", i)) { i += 4; look = true; }
      else if (src.startsWith("(?<", i)) { const close = src.indexOf(">", i); if (close < 0) fail("bad group name"); i = close + 1; }
      else if (src[i + 1] === "?") fail("unknown group");
      else i++;
      const body = alt();
      if (src[i] !== ")") fail("unclosed group");
      i++;
      if (!look) return body;
      const text = src.slice(start, i);
      // A lookbehind sees only text already there; a lookahead may look past the end: taken as true.
      return { t: "assert", src: text.startsWith("(?<") && lookbehinds ? text : "" };
    }
    if (c === "[") {
      i++;
      if (src[i] === "^") i++;
      while (i < src.length && src[i] !== "]") i += src[i] === "\\" ? 2 : 1;
      if (i >= src.length) fail("unclosed class");
      i++;
      return { t: "atom", src: src.slice(start, i) };
    }
    if (c === "\\") {
      const e = src[i + 1];
      if (e === undefined) fail("trailing backslash");
      if (e === "b" || e === "B") { i += 2; return { t: "assert", src: `(?:\\${e}|$)` }; }
      if (/[1-9]/.test(e!) || (e === "k" && src[i + 2] === "<")) fail("back-reference");
      // Outside unicode mode an incomplete \x, \u or \c escape is read as its letters (`\xg1` is "xg1") and \0 with
      // digits as octal: an atom of several characters, which the per-character sets and pairs below cannot describe.
      const hex = (n: number) => new RegExp(`^[0-9a-fA-F]{${n}}$`).test(src.slice(i + 2, i + 2 + n));
      if ((e === "x" && !hex(2)) || (e === "u" && !(unicode && src[i + 2] === "{") && !hex(4))
        || (e === "c" && !/^[A-Za-z]$/.test(src[i + 2] ?? "")) || (e === "0" && /^[0-9]$/.test(src[i + 2] ?? ""))) fail("escape read as several characters");
      let len = 2;
      if (e === "x") len = 4;
      else if (e === "c") len = 3;
      else if (e === "u") len = unicode && src[i + 2] === "{" ? src.indexOf("}", i) - i + 1 : unicode && escapedPair(src, i) ? 12 : 6;
      else if ((e === "p" || e === "P") && unicode) len = src.indexOf("}", i) - i + 1;
      if (len <= 0) fail("bad escape");
      i += len;
      return { t: "atom", src: src.slice(start, i) };
    }
    if (c === "^" || c === "$") { i++; return { t: "assert", src: c }; }
    if ("*+?".includes(c) || (c === "{" && unicode)) fail("nothing to repeat");
    if (c === "{" && /^\{\d+(,\d*)?\}/.test(src.slice(i))) fail("nothing to repeat");
    // A literal character, a whole surrogate pair in unicode mode.
    i += unicode && isHigh(c.charCodeAt(0)) ? 2 : 1;
    return { t: "atom", src: src.slice(start, i) };
  }

  const root = alt();
  if (i !== src.length) fail("unbalanced )");
  return root;
}

/**
 * A surrogate pair written as two escapes (`\uD83D\uDE00`; a regex's source writes an emoji so) at `i`: one
 * character in unicode mode, where either half alone matches only a lone surrogate.
 */
function escapedPair(src: string, i: number): boolean {
  return /^\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}/i.test(src.slice(i, i + 12));
}

const quant = (min: number, max: number) => (max === Infinity ? `{${min},}` : `{${min},${max}}`);

/** The node itself, with lookaheads dropped and \b made lenient at the end (so its language only grows). */
function full(n: Node): string {
  switch (n.t) {
    case "atom": case "assert": return n.src;
    case "seq": return n.items.map(full).join("");
    case "alt": return `(?:${n.alts.map(full).join("|")})`;
    case "rep": return `(?:${full(n.body)})${quant(n.min, n.max)}`;
  }
}

/** Every beginning of a string `n` matches (the empty one and the whole one included). */
function prefix(n: Node): string {
  switch (n.t) {
    case "atom": return `(?:${n.src})?`;
    case "assert": return n.src;
    case "alt": return `(?:${n.alts.map(prefix).join("|")})`;
    case "seq": {
      // prefixes(a · rest) = prefixes(a) ∪ a · prefixes(rest)
      let out = "";
      for (let k = n.items.length - 1; k >= 0; k--) {
        const item = n.items[k]!;
        out = out === "" ? prefix(item) : `(?:${full(item)}${out}|${prefix(item)})`;
      }
      return out;
    }
    case "rep": {
      if (n.max === 0) return "";
      // One character repeated: prefixes of c{m,n} are c{0,n}. Otherwise up to n-1 whole repeats, then a prefix of one.
      if (n.body.t === "atom") return `(?:${n.body.src})${quant(0, n.max)}`;
      const whole = n.max - 1 === 0 ? "" : `(?:${full(n.body)})${quant(0, n.max - 1)}`;
      return `${whole}(?:${prefix(n.body)})`;
    }
  }
}

/** Most UTF-16 code units a match of `n` can span (Infinity when unbounded). */
function longest(n: Node, unit: number): number {
  switch (n.t) {
    case "atom": return unit;
    case "assert": return 0;
    case "seq": return n.items.reduce((sum, item) => sum + longest(item, unit), 0);
    case "alt": return Math.max(...n.alts.map((a) => longest(a, unit)));
    case "rep": return n.max === 0 ? 0 : n.max * longest(n.body, unit);
  }
}

/** Every character-consuming piece of `n` (the assertions consume none). */
function atoms(n: Node, out: string[] = []): string[] {
  switch (n.t) {
    case "atom": if (!out.includes(n.src)) out.push(n.src); break;
    case "assert": break;
    case "seq": for (const item of n.items) atoms(item, out); break;
    case "alt": for (const a of n.alts) atoms(a, out); break;
    case "rep": if (n.max > 0) atoms(n.body, out); break;
  }
  return out;
}

/** Whether `n` can match the empty string. */
function nullable(n: Node): boolean {
  switch (n.t) {
    case "atom": return false;
    case "assert": return true;
    case "seq": return n.items.every(nullable);
    case "alt": return n.alts.some(nullable);
    case "rep": return n.min === 0 || nullable(n.body);
  }
}

/** The atoms that can read the first character of a non-empty match of `n`. */
function firstAtoms(n: Node, out: string[] = []): string[] {
  switch (n.t) {
    case "atom": if (!out.includes(n.src)) out.push(n.src); break;
    case "assert": break;
    case "seq": for (const item of n.items) { firstAtoms(item, out); if (!nullable(item)) break; } break;
    case "alt": for (const a of n.alts) firstAtoms(a, out); break;
    case "rep": if (n.max > 0) firstAtoms(n.body, out); break;
  }
  return out;
}

/** An atom's ASCII characters as a 128-bit mask, by the pattern's flags and the atom (the rules share most atoms). */
const ASCII_MASKS = new Map<string, Uint32Array>();

/**
 * Which two ASCII characters can open a match of `n`: per first character (0-127), a 128-bit row of the characters
 * that can come second (Uint32Array, 4 words a row). Found by following the pattern's atoms (a Glushkov automaton:
 * the atoms that can read a match's first character, and for each one the atoms that can read the next) with every
 * assertion (\b, lookarounds, ^ and $) read as true, so the set only grows: a pair not in it opens no match, nor any
 * beginning of one longer than a character. A first character after which a match may already end allows any second.
 */
function firstPairs(root: Node, flags: string): Uint32Array {
  const srcs: string[] = [], follow: Set<number>[] = [];
  type Ends = { first: number[]; last: number[]; nullable: boolean };
  const walk = (n: Node): Ends => {
    switch (n.t) {
      case "atom": { const p = srcs.push(n.src) - 1; follow.push(new Set()); return { first: [p], last: [p], nullable: false }; }
      case "assert": return { first: [], last: [], nullable: true };
      case "alt": {
        const all = n.alts.map(walk);
        return { first: all.flatMap((e) => e.first), last: all.flatMap((e) => e.last), nullable: all.some((e) => e.nullable) };
      }
      case "seq": {
        let first: number[] = [], last: number[] = [], nullable = true;
        for (const item of n.items) {
          const e = walk(item);
          for (const x of last) for (const y of e.first) follow[x]!.add(y);
          if (nullable) first = first.concat(e.first);
          last = e.nullable ? last.concat(e.last) : e.last;
          nullable &&= e.nullable;
        }
        return { first, last, nullable };
      }
      case "rep": {
        if (n.max === 0) return { first: [], last: [], nullable: true };
        const e = walk(n.body);
        if (n.max >= 2) for (const x of e.last) for (const y of e.first) follow[x]!.add(y);
        return { first: e.first, last: e.last, nullable: n.min === 0 || e.nullable };
      }
    }
  };
  const top = walk(root), ends = new Set(top.last);
  const maskOf = (src: string) => {
    const key = `${flags}/${src}`;
    let m = ASCII_MASKS.get(key);
    if (!m) {
      const set = new CharSet([src], flags);
      m = new Uint32Array(4);
      for (let c = 0; c < 128; c++) if (set.has(String.fromCharCode(c), 0)) m[c >> 5]! |= 1 << (c & 31);
      ASCII_MASKS.set(key, m);
    }
    return m;
  };
  const rows = new Uint32Array(128 * 4);
  for (const p of top.first) {
    const firsts = maskOf(srcs[p]!);
    const seconds = new Uint32Array(4);
    if (ends.has(p)) seconds.fill(0xffffffff);
    else for (const q of follow[p]!) { const m = maskOf(srcs[q]!); for (let w = 0; w < 4; w++) seconds[w]! |= m[w]!; }
    for (let c = 0; c < 128; c++) if ((firsts[c >> 5]! >>> (c & 31)) & 1) for (let w = 0; w < 4; w++) rows[c * 4 + w]! |= seconds[w]!;
  }
  return rows;
}

/** A rule's pattern, analysed: its prefix regex and the longest match it can make. */
export interface PrefixAnalysis {
  /**
   * Global; run it with lastIndex where the search may start: its first match starts at the earliest position
   * whose rest of the text could still grow into, or already is, a match. An empty match at the end means none.
   */
  live: RegExp;
  /** Most characters one match spans (Infinity when the pattern has an unbounded repeat). */
  longest: number;
  /**
   * Earliest start in `text` (at or after `from`) of a tail that could still become a match; `text.length` when
   * there is none. Same answer as `liveFrom(live, text, from)`, found faster: a tail that can still grow into a
   * match lies inside the text's trailing run of characters some atom of the pattern reads, and starts with one
   * a match can start with; the prefix regex is tried (sticky) only there. From further back it would try every
   * position of the held text, per push, to find nothing.
   */
  liveStart(text: string, from: number): number;
}

/**
 * Undefined when the pattern cannot be analysed (the caller then holds back conservatively). With `lookbehinds`
 * false they are dropped too: for a rule run only in windows around an anchor (rule-match.ts), whose window may
 * start inside a run where the lookbehind would fail.
 */
export function analysePattern(pattern: RegExp, opts: { lookbehinds?: boolean } = {}): PrefixAnalysis | undefined {
  // The v flag's classes may read strings (`[\q{ab}]`) and nest (`[[a-z]--[aeiou]]`): not in the subset parsed here.
  if (pattern.multiline || pattern.sticky || pattern.flags.includes("v")) return undefined;
  try {
    const unicode = pattern.unicode;
    const root = parse(pattern.source, unicode, opts.lookbehinds ?? true);
    const live = new RegExp(`(?:${prefix(root)})$`, pattern.flags.replace(/[gy]/g, "") + "g");
    const rest = pattern.flags.replace(/[gy]/g, "");
    const alphabet = new CharSet(atoms(root), rest), first = new CharSet(firstAtoms(root), rest), pairs = firstPairs(root, rest);
    const sticky = new RegExp(live.source, rest + "y");
    const liveStart = (text: string, from: number) => {
      const n = text.length;
      let stop = Math.max(0, from);
      // In unicode mode a search from inside a surrogate pair starts at the pair (lastIndex backs up to it), so the
      // plain search may answer a position before `from`: the same here (holding from the pair holds more, never less).
      if (unicode && stop > 0 && stop < n && isLow(text.charCodeAt(stop)) && isHigh(text.charCodeAt(stop - 1))) stop--;
      let s = n;
      while (s > stop && alphabet.has(text, s - 1)) s--;
      for (let p = s; p < n; p++) {
        if (!first.has(text, p)) continue;
        // Two ASCII characters no match opens with: the prefix regex would fail here. Its code is cold after a decode
        // step (the generic key rule's is kilobytes): skipping the call is most of what this check costs a push.
        if (p + 1 < n) {
          const a = text.charCodeAt(p), b = text.charCodeAt(p + 1);
          if (a < 128 && b < 128 && !((pairs[a * 4 + (b >> 5)]! >>> (b & 31)) & 1)) continue;
        }
        sticky.lastIndex = p;
        if (sticky.test(text)) return p; // not empty: p < n and the pattern ends with $
      }
      return n;
    };
    return { live, longest: longest(root, unicode ? 2 : 1), liveStart };
  } catch {
    return undefined;
  }
}

/**
 * Earliest start in `text` (at or after `from`) of a tail that could still become a match of the prefix regex's
 * rule; `text.length` when there is none.
 */
export function liveFrom(re: RegExp, text: string, from: number): number {
  re.lastIndex = Math.max(0, from);
  const m = re.exec(text);
  return m && m[0].length ? m.index : text.length;
}
