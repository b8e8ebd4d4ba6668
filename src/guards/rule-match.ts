/**
 * Running the response scanner's rules over a text: every match of each rule that passes its check and
 * overlaps nothing found by an earlier rule. Rules with an anchor (rules/secrets.ts) run only near the
 * anchor's hits, which gives the same matches as running them over the whole text.
 */
import type { SecretRule } from "./rules/secrets";

/** Characters of context an anchored rule's window keeps on each side, for its lookbehinds and lookaheads. */
const CONTEXT = 16;

/** A finding: [start, end) and the rule that matched. */
export interface Span { start: number; end: number; rule: string }

/** A match of `rule` at `start` that passes its check and overlaps nothing found: added to `mine`. */
function take(rule: SecretRule, found: Span[], mine: Span[], start: number, m: string): boolean {
  const end = start + m.length;
  if ((rule.validate && !rule.validate(m)) || overlaps(found, start, end)) return false;
  const [from, to] = rule.redacts?.(m) ?? [0, m.length]; // an assignment's name and `=` stay
  mine.push({ start: start + from, end: start + to, rule: rule.id });
  return true;
}

// exec loops rather than matchAll: matchAll clones the regex on every call, and a stream calls this per chunk.
export function allMatches(text: string, rule: SecretRule, found: Span[]): Span[] {
  const mine: Span[] = [], re = rule.pattern;
  re.lastIndex = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    take(rule, found, mine, m.index, m[0]);
    if (!m[0].length) re.lastIndex++;
  }
  return mine;
}

/** Only near anchor hits: a match starts at most `before` ahead of its anchor and spans at most maxLength. */
export function anchoredMatches(text: string, rule: SecretRule, found: Span[]): Span[] {
  const mine: Span[] = [], re = rule.pattern, anchor = rule.anchor!;
  let from = 0; // every match starting before this has been taken
  anchor.re.lastIndex = 0;
  for (let a = anchor.re.exec(text); a; a = anchor.re.exec(text)) {
    const hit = a.index;
    if (hit < from) continue;
    const ws = Math.max(from, hit - anchor.before);
    // Context before the window for lookbehinds, unless `before` cut it (a longer run than any match has)
    const c0 = ws === hit - anchor.before ? ws : Math.max(0, ws - CONTEXT);
    const sub = text.slice(c0, Math.min(text.length, hit + rule.maxLength + CONTEXT));
    re.lastIndex = ws - c0;
    for (let m = re.exec(sub); m && m.index + c0 <= hit; m = re.exec(sub)) {
      if (take(rule, found, mine, m.index + c0, m[0])) from = m.index + c0 + m[0].length;
      if (!m[0].length) re.lastIndex++;
    }
    from = Math.max(from, hit + 1);
  }
  return mine;
}

/** Whether [start, end) overlaps a span of `sorted` (sorted by start, non-overlapping): a binary search. */
export function overlaps(sorted: Span[], start: number, end: number): boolean {
  let lo = 0, hi = sorted.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (sorted[mid]!.end <= start) lo = mid + 1; else hi = mid; }
  return lo < sorted.length && sorted[lo]!.start < end;
}

/** Merges sorted `more` (none overlapping `into`) into sorted `into`, in place. */
export function merge(into: Span[], more: Span[]) {
  const a = into.slice();
  let i = 0, j = 0, k = 0;
  into.length = a.length + more.length;
  while (i < a.length || j < more.length) into[k++] = j >= more.length || (i < a.length && a[i]!.start < more[j]!.start) ? a[i++]! : more[j++]!;
}
