/**
 * A request's stop strings, applied to the answer's text as it is released: the text goes on up to the first stop
 * string, a stretch that may still become one is held, and the generation is ended at the stop.
 *
 * Why not node-llama-cpp's own stop triggers: it looks for them in each token's text detokenized alone and, at a
 * stop, re-tokenizes that text: a SentencePiece "▁" alone is "", so the space before a stop was dropped ('{"5 one '
 * came out '{"5 one' with stop "like "; '{"ı fals' came out '{"ıfals' with stop "e"), and so was a byte of a split
 * character before it; a stop made of byte tokens (a non-ASCII character) was never found. Here the stop is found
 * in the text as sent, so the answer with a stop string is the answer without it, cut before the stop.
 */
import { stopFree } from "./early-text";

/** `onText` gets the released text; `end` is called once, at the stop (the generation should end there). */
export function stopText(stops: readonly string[], onText: ((text: string) => void) | undefined, end: () => void) {
  let sent = "", held = "", stopped = false;
  const send = (text: string) => {
    if (!text) return;
    sent += text;
    onText?.(text);
  };
  /** The next piece of the answer's text. */
  const push = (chunk: string) => {
    if (stopped || !chunk) return;
    // `held` is the longest end of what came before that a stop string may begin with, so a stop can only begin
    // in held + chunk, never in text already sent.
    const text = held + chunk;
    const at = firstStop(text, stops);
    if (at >= 0) {
      send(text.slice(0, at));
      held = "";
      stopped = true;
      end();
      return;
    }
    const free = stopFree(text, stops);
    send(text.slice(0, free));
    held = text.slice(free);
  };
  return {
    push,
    /**
     * The generation has ended; `tail`: text of tokens node-llama-cpp never released (token-tally.ts), which may
     * still hold a stop. Without a stop, what was held goes out.
     */
    finish(tail = "") {
      push(tail);
      if (!stopped) send(held);
      held = "";
    },
    /** The text sent so far. */
    text: () => sent,
    /** The text was ended at a stop string. */
    get stopped() { return stopped; },
  };
}

/** Where the first of `stops` begins in `text`, or -1. */
export function firstStop(text: string, stops: readonly string[]): number {
  let first = -1;
  for (const s of stops) {
    const i = s ? text.indexOf(s) : -1;
    if (i >= 0 && (first < 0 || i < first)) first = i;
  }
  return first;
}
