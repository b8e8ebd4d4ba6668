/**
 * How much of a stream's unsent text the response scanner must keep: from the earliest position where more text
 * could still complete or change a finding, and not a character before. Each rule's regex is turned into a
 * prefix regex (regex-prefix.ts) and run on the reader's view of the text (scan-view.ts); a short encoded run
 * still being written (encoded.ts), a spaced-out run that may still join into a word, and a long secret's
 * opening (long-secrets.ts) are held too. Text that no rule can extend into a match flows at once.
 */
import { encodedLiveStart } from "./encoded";
import { LONG_SECRETS } from "./long-secrets";
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
 * Builds the hold-back analysis for `rules` (the whole-match rules, long secrets excluded). `window` bounds what a
 * rule that cannot be analysed, or has no longest match, may hold.
 */
export function liveTail(rules: SecretRule[], window: number): (text: string, view?: ScanView, base?: number) => LiveTail {
  const checks = rules.map((rule) => {
    // Anchored rules run in a window that may start inside a run (rule-match.ts): their lookbehinds cannot be relied on.
    const a = analysePattern(rule.pattern, { lookbehinds: !rule.anchor });
    // A tail can be a beginning of a match only if it is no longer than the longest match; +1 for a complete
    // match whose end (\b, a lookahead) the next character still decides.
    return a ? { live: a.liveStart, reach: Math.min(a.longest, window) + 1 } : { live: undefined, reach: window };
  });

  /** Earliest positions of the view's text that could still be (part of) a finding; its length if none. */
  function inView(text: string, base: number): LiveTail {
    let first = text.length, opening = text.length;
    for (const c of checks) {
      const from = Math.max(base, text.length - c.reach);
      if (from >= first) continue;
      if (!c.live) { first = from; continue; }
      first = Math.min(first, c.live(text, from));
    }
    first = Math.min(first, encodedLiveStart(text));
    for (const secret of LONG_SECRETS) opening = Math.min(opening, secret.partial(text));
    return { rules: first, opening };
  }

  /**
   * Earliest original offsets of `text` (whose view is `view`) that must be held back; text.length if none. Text
   * before `base` was released already (it is there for lookbehinds and \b): no rule's match is looked for from it.
   */
  return (text, view = scanView(text), base = 0) => {
    const found = inView(view.text, viewIndex(view, base));
    let rules = at(view, found.rules), opening = at(view, found.opening);
    // A spaced-out run being written reads, once long enough, as one word joined to what precedes it: analyse it
    // that way too, and hold the run itself.
    const run = trailingSpacedRun(text);
    if (run) {
      const joined = scanView(run.joined), more = inView(joined.text, viewIndex(joined, Math.min(base, run.start)));
      rules = Math.min(rules, run.start, at(joined, more.rules));
      opening = Math.min(opening, at(joined, more.opening));
    }
    // Never split a surrogate pair: its first half alone reads as nothing, the pair may read as a letter.
    const last = text.charCodeAt(text.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) rules = Math.min(rules, text.length - 1);
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
