/**
 * The text of released completion tokens, detokenized after the prompt they follow, cut at the first stop string.
 *
 * Why: node-llama-cpp's LlamaCompletion detokenizes its output with nothing before it, so a SentencePiece model's
 * first generated token loses its leading space (" hello" came out as "hello"; llama-server, which writes each
 * token's own piece, sends " hello"). Text built here from the same tokens, with the prompt's tail as context,
 * keeps what the tokens really spell; logprob token strings use the same context, so they still spell the text.
 * Stop strings: node-llama-cpp looks for them in each token's text detokenized alone, so it cut where those texts
 * said: a SentencePiece "▁" alone is "" (stop "e" after '{"ı false' gave '{"ıfals', and the space before a stop
 * word was dropped), the byte left of a split character before a stop was dropped, and a stop spelled by byte
 * tokens (a non-ASCII character) was never found. The cut here is made in the text the sampled tokens spell.
 */
import type { LlamaModel, Token } from "node-llama-cpp";

/** Tokens of context each chunk is detokenized after (as in logprobs.ts and token-tally.ts). */
export const TEXT_CONTEXT = 8;

/** What cutting at stop strings needs: the request's stop strings and the tokens really sampled (token-tally.ts). */
export interface StopCut {
  stops: readonly string[];
  /** Every token sampled so far, in order. */
  sampled: () => readonly Token[];
  /** Their text, detokenized after the prompt. */
  spelled: () => string;
  /** Ends the generation at the next token (a stop string node-llama-cpp did not see). */
  end: () => void;
}

/**
 * `context`: the tokens evaluated before the generation (the prompt, BOS included). Call `push` with each batch
 * of tokens node-llama-cpp releases (its onToken); the chunk's text goes to `onText` and is kept for `text()`.
 * With `cut`, call `finish` once the generation has ended.
 */
export function contextText(model: LlamaModel, context: readonly Token[], onText?: (text: string) => void, cut?: StopCut) {
  const recent: Token[] = context.slice(-TEXT_CONTEXT);
  let text = "", deferred = "", released = 0, stopped = false, odd = false;
  const send = (chunk: string) => {
    text += chunk;
    if (chunk) onText?.(chunk);
  };
  // A stop is looked for only where it could end in new text (the text before had none): no rescan per token.
  const longest = Math.max(0, ...(cut?.stops ?? []).map((s) => s.length));
  /** Sends `spelled` up to its first stop string and ends there; false when it has none past what was sent. */
  const stopIn = (spelled: string): boolean => {
    const at = firstStop(spelled, cut!.stops, Math.max(0, text.length - longest + 1));
    if (at < 0 || !spelled.startsWith(text.slice(0, at))) return false;
    // A stop that began in text already sent (it cannot be taken back) ends the text where it is.
    send(spelled.slice(text.length, Math.max(at, text.length)));
    stopped = true;
    cut!.end();
    return true;
  };
  return {
    push(tokens: readonly Token[]) {
      if (!tokens.length || stopped) return;
      const at = released;
      released += tokens.length;
      const chunk = model.detokenize(tokens, false, recent);
      recent.push(...tokens);
      recent.splice(0, Math.max(0, recent.length - TEXT_CONTEXT));
      if (!cut) return send(chunk);
      // At a stop string node-llama-cpp releases, not the tokens it sampled, but its text before the stop
      // re-tokenized: not what the tokens spell. Such a release is its last; `finish` decides its text.
      odd ||= !sameTokens(tokens, cut.sampled().slice(at, released));
      if (odd) { deferred += chunk; return; }
      if (!stopIn(text + chunk)) send(chunk);
    },
    /**
     * The generation has ended: sends what the sampled tokens spell before a stop string, where they have one (the
     * tokens still held back at max_tokens are in it too); else what was deferred.
     */
    finish() {
      if (stopped || !cut) return;
      if (!stopIn(cut.spelled())) send(deferred);
    },
    /** Everything released so far. */
    text: () => text,
    /** The text was ended at a stop string here. */
    get stopped() { return stopped; },
  };
}

const sameTokens = (a: readonly Token[], b: readonly Token[]) => a.length === b.length && a.every((t, i) => t === b[i]);

/** Where the first of `stops` begins in `text` at `from` or later, or -1. */
function firstStop(text: string, stops: readonly string[], from: number): number {
  let first = -1;
  for (const s of stops) {
    const i = s ? text.indexOf(s, from) : -1;
    if (i >= 0 && (first < 0 || i < first)) first = i;
  }
  return first;
}
