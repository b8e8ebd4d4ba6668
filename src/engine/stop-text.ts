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
import type { TokenLogprob } from "./engine";

/** Text to send and, with logprobs, the tokens that spell it (null: they could not be lined up with it). */
export interface Piece { text: string; logprobs?: TokenLogprob[] | null }

/** `onText` gets the released text; `end` is called once, at the stop (the generation should end there). */
export function stopText(stops: readonly string[], onText: ((text: string) => void) | undefined, end: () => void) {
  let sent = "";
  const cut = stopPieces(stops, ({ text }) => { sent += text; onText?.(text); }, end);
  return {
    /** The next piece of the answer's text. */
    push: (chunk: string) => cut.push({ text: chunk }),
    /**
     * The generation has ended; `tail`: text of tokens node-llama-cpp never released (token-tally.ts), which may
     * still hold a stop. Without a stop, what was held goes out.
     */
    finish(tail = "") {
      cut.push({ text: tail });
      cut.finish();
    },
    /** The text sent so far. */
    text: () => sent,
    /** The text was ended at a stop string. */
    get stopped() { return cut.stopped; },
  };
}

/**
 * The same over pieces that may carry the logprobs of the tokens spelling them (the server applies stops to the text
 * as sent this way: server/stop-after-scan.ts). Text alone is held as one stretch and cut anywhere; a piece with
 * logprobs is held whole until it can go whole, and at the stop is cut with its logprobs (logprobsBefore).
 */
export function stopPieces(stops: readonly string[], send: (p: Piece) => void, onStop: () => void) {
  let held: Piece[] = [], stopped = false;
  const emit = (p: Piece) => { if (p.text || p.logprobs?.length) send(p); };
  /** Sends what is held up to character `at`; returns the rest (a piece cut there only where it has no logprobs). */
  const upTo = (at: number): Piece[] => {
    let pos = 0, k = 0;
    for (; k < held.length && pos < at; k++) {
      const p = held[k]!, n = p.text.length;
      if (pos + n <= at) emit(p);
      else if (!p.logprobs) { emit({ text: p.text.slice(0, at - pos) }); return [{ text: p.text.slice(at - pos) }, ...held.slice(k + 1)]; }
      else if (stopped) emit({ text: p.text.slice(0, at - pos), logprobs: logprobsBefore(p.logprobs, at - pos) });
      else return held.slice(k);
      pos += n;
    }
    return held.slice(k);
  };
  return {
    push(p: Piece) {
      if (stopped || (!p.text && !p.logprobs?.length)) return;
      const last = held.at(-1);
      // Text alone after text alone is one stretch: sent as one piece, as it came.
      if (last && !last.logprobs && !p.logprobs) held[held.length - 1] = { text: last.text + p.text };
      else held.push(p);
      const text = held.map((x) => x.text).join("");
      const at = firstStop(text, stops);
      if (at >= 0) {
        stopped = true;
        upTo(at);
        held = [];
        onStop();
        return;
      }
      held = upTo(stopFree(text, stops));
    },
    /** The answer's text is all there: without a stop, what was held goes out. */
    finish() {
      if (!stopped) for (const x of held.splice(0)) emit(x);
    },
    get stopped() { return stopped; },
  };
}

/** UTF-8 bytes a character takes, from its first byte. */
const charBytes = (lead: number) => (lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2);

/**
 * The entries of `logprobs` (spelling a text, in order) that spell its first `at` characters: a token that runs past
 * `at` is cut there (a stop inside it), as the engine's own stop left it; a character made of byte tokens counts once
 * its last byte is there.
 */
export function logprobsBefore(logprobs: readonly TokenLogprob[], at: number): TokenLogprob[] {
  const out: TokenLogprob[] = [];
  let pos = 0, bytes: number[] = [];
  for (const t of logprobs) {
    if (pos >= at) break;
    if (t.bytes) {
      out.push(t);
      bytes.push(...t.bytes);
      while (bytes.length && bytes.length >= charBytes(bytes[0]!)) {
        const n = charBytes(bytes[0]!);
        pos += Buffer.from(bytes.slice(0, n)).toString("utf8").length;
        bytes = bytes.slice(n);
      }
    } else if (pos + t.token.length <= at) {
      out.push(t);
      pos += t.token.length;
    } else {
      out.push({ ...t, token: t.token.slice(0, at - pos) });
      pos = at;
    }
  }
  return out;
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
