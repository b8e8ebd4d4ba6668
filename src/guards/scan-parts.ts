/**
 * The generated texts of one answer (a choice's text and each tool call's arguments, or a Responses answer's output
 * parts), each scanned whole by a response filter of its own.
 *
 * Why apart: they were joined by a separator and scanned through one filter, and a match could run across it. A text
 * ending in "pwd=" took the separator and the call's arguments as its password; the redaction swallowed the separator,
 * and the calls were dropped with finish_reason content_filter (over-redaction), as choices of n > 1 were before.
 */
import type { TextFilter } from "./response-scan";

/** Each part through a new filter from `newFilter` (given the part's index); `blocked` when a "block" rule fired in any of them. */
export function scanParts(parts: readonly string[], newFilter: (index: number) => TextFilter): { parts: string[]; blocked: boolean } {
  let blocked = false;
  const out = parts.map((part, i) => {
    const f = newFilter(i);
    const text = f.whole(part);
    blocked ||= f.blocked;
    return text;
  });
  return { parts: out, blocked };
}
