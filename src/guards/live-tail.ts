/**
 * How much of a stream's unsent text the response scanner must keep: from the earliest position where more text
 * could still complete or change a finding, and not a character before. Each rule's regex is turned into a
 * prefix regex (regex-prefix.ts) and run on the reader's view of the text (scan-view.ts); a short encoded run
 * still being written (encoded.ts), a spaced-out run that may still join into a word, and a long secret's
 * opening (long-secrets.ts) are held too. Text that no rule can extend into a match flows at once.
 */
import { encodedLiveStart } from "./encoded";
import { LONG_SECRETS } from "./long-secrets";
import { isHigh } from "./regex-chars";
import { analysePattern } from "./regex-prefix";
import type { SecretRule } from "./rules/secrets";
import { at, scanView, trailingSpacedRun, type ScanView } from "./scan-view";

/** Original offsets from which text must be held back (the text's length: none). */
export interface LiveTail {
  /** Earliest start of a tail some whole-match rule (or encoded form) could still extend into a finding. */
  rules: number;
  /** Earliest start of a long secret's opening still being written (long-secrets.ts); not bounded by the window. */
  opening: number;
}

/**
 * What a stream's filter keeps between analyses so each check resumes where it stopped instead of reading the held
 * text again (per push, the cost of the new text, not of the held tail). Sound because every check's prefix
 * language is closed under taking prefixes (regex-prefix.ts): a position whose rest of the text could not grow into
 * a match cannot once more text is appended either. So each check's first position not yet ruled out is kept, in
 * the filter's own offsets, and the next analysis of the same text with text appended starts there.
 */
/** Fewest held view characters for which a LiveMemo is kept (bench-scan-push: below it, prose pushes got slower). */
const MEMO_MIN = 24;

export class LiveMemo {
  /** Offset of the analysed text's first character; the filter adds what it drops from the text's front. */
  origin = 0;
  /** Per check (span rules, then long secrets): offset of its first position not ruled out; null: none kept. */
  next: Float64Array | null = null;
  /** `origin` when `next` was last kept. */
  kept = 0;
  /** The text changed otherwise than by dropping its front and appending: start over. */
  reset() { this.next = null; this.origin = 0; this.kept = 0; }
}

/**
 * Builds the hold-back analysis for `rules` (the whole-match rules, long secrets excluded). `window` bounds what a
 * rule that cannot be analysed, or has no longest match, may hold.
 */
export function liveTail(rules: SecretRule[], window: number): (text: string, view?: ScanView, base?: number, memo?: LiveMemo) => LiveTail {
  const checks = rules.map((rule) => {
    // Anchored rules run in a window that may start inside a run (rule-match.ts): their lookbehinds cannot be relied on.
    const a = analysePattern(rule.pattern, { lookbehinds: !rule.anchor });
    // A tail can be a beginning of a match only if it is no longer than the longest match; +1 for a complete
    // match whose end (\b, a lookahead) the next character still decides.
    return a ? { live: a.liveStart, reach: Math.min(a.longest, window) + 1 } : { live: undefined, reach: window };
  });

  /**
   * Earliest positions of the view's text that could still be (part of) a finding; its length if none. With `memo`
   * (of `view`, made of `source`): each check starts at its first position not ruled out yet, and keeps its answer.
   */
  function inView(text: string, base: number, memo?: LiveMemo, view?: ScanView, source?: string): LiveTail {
    let first = text.length, opening = text.length;
    const next = memo && view ? ruledOut(memo, view, base) : undefined;
    // A high surrogate at the end reads as a letter once its pair comes: nothing from it on is ruled out.
    const cap = source === undefined ? 0 : isHigh(source.charCodeAt(source.length - 1)) ? source.length - 1 : source.length;
    /** From where check k must look (its memo's start, if any); keeps its answer p. */
    const startOf = (k: number, from: number) => (next ? Math.max(from, viewIndex(view!, next[k]! - memo!.origin)) : from);
    const keep = (k: number, p: number) => { if (next) next[k] = memo!.origin + Math.min(cap, at(view!, p)); };
    for (let k = 0; k < checks.length; k++) {
      const c = checks[k]!;
      if (!c.live) { const from = Math.max(base, text.length - c.reach); if (from < first) first = from; continue; }
      const from = startOf(k, Math.max(base, text.length - c.reach));
      if (from >= first) continue;
      const p = c.live(text, from);
      keep(k, p);
      if (p < first) first = p;
    }
    first = Math.min(first, encodedLiveStart(text));
    for (let k = 0; k < LONG_SECRETS.length; k++) {
      const j = checks.length + k, p = LONG_SECRETS[k]!.partial(text, startOf(j, 0));
      keep(j, p);
      if (p < opening) opening = p;
    }
    return { rules: first, opening };
  }

  /**
   * The memo's per-check offsets when they apply to `view` (see LiveMemo), fresh ones (nothing ruled out) when they
   * do not; undefined when nothing may be kept from this view.
   */
  function ruledOut(memo: LiveMemo, view: ScanView, vbase: number): Float64Array | undefined {
    // A view that joined spaced-out runs may read its text differently once more comes: keep nothing from it. A
    // short held tail (a word of prose) is read again faster than the memo is kept: none below MEMO_MIN.
    if (view.spaced || view.text.length - vbase < MEMO_MIN) { memo.reset(); return undefined; }
    // A lookbehind or \b at a position reads the character before it: it must be the one read when the position
    // was ruled out (the same front, or a character the filter keeps as context before the held text).
    const fits = memo.next && (memo.origin === memo.kept || vbase >= 2);
    if (!fits) memo.next = new Float64Array(checks.length + LONG_SECRETS.length).fill(memo.origin);
    memo.kept = memo.origin;
    return memo.next!;
  }

  /**
   * Earliest original offsets of `text` (whose view is `view`) that must be held back; text.length if none. Text
   * before `base` was released already (it is there for lookbehinds and \b): no rule's match is looked for from it.
   */
  return (text, view = scanView(text), base = 0, memo) => {
    const found = inView(view.text, viewIndex(view, base), memo, view, text);
    let rules = at(view, found.rules), opening = at(view, found.opening);
    // A spaced-out run being written reads, once long enough, as one word joined to what precedes it: analyse it
    // that way too, and hold the run itself.
    const run = trailingSpacedRun(view);
    if (run) {
      const joined = scanView(run.joined), more = inView(joined.text, viewIndex(joined, Math.min(base, run.start)));
      rules = Math.min(rules, run.start, at(joined, more.rules));
      opening = Math.min(opening, at(joined, more.opening));
    }
    // Never split a surrogate pair: its first half alone reads as nothing, the pair may read as a letter.
    if (isHigh(text.charCodeAt(text.length - 1))) rules = Math.min(rules, text.length - 1);
    return { rules, opening };
  };
}

/** The first position of the view at or after original offset `offset`. */
function viewIndex(view: ScanView, offset: number): number {
  const from = view.from;
  if (!from) return offset;
  let lo = 0, hi = from.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (from[mid]! < offset) lo = mid + 1; else hi = mid; }
  return lo;
}
