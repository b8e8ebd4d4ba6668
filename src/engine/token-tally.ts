/**
 * Every token a generation sampled, seen at the sequence's `evaluate` (what LlamaChat and LlamaCompletion call).
 *
 * Why: node-llama-cpp releases a token (onToken / onTextChunk / the response) only once its text is complete UTF-8.
 * When generation stops at max_tokens (or an abort) in the middle of a multi-byte character, the tokens still held
 * back are never released: usage under-reported them (54 of 128 seen) and their text was dropped. The tally counts
 * what was really sampled and gives back the held-back tail so it can be sent.
 */
import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";

/** Tokens of context a tail is detokenized after, so a leading space comes out as it does in the text. */
const CONTEXT = 8;

/**
 * Wraps `sequence.evaluate` (after any other wrapper, e.g. logprobs) to record each sampled token.
 * `onSampled`: called at each sampled token, at once (node-llama-cpp's onToken can come later: it holds tokens back).
 */
export function tallyTokens(sequence: LlamaContextSequence, model: LlamaModel, onSampled?: () => void) {
  const generated: Token[] = [];
  type Evaluate = LlamaContextSequence["evaluate"];
  const inner: Evaluate = sequence.evaluate;
  const evaluate: Evaluate = async function* (tokens, options) {
    const it = inner.call(sequence, tokens, options);
    let input: Token | Token[] | void = undefined;
    try {
      while (true) {
        const r = await it.next(input);
        if (r.done) return;
        generated.push(r.value);
        onSampled?.();
        input = yield r.value;
      }
    } finally {
      await it.return();
    }
  };
  Object.defineProperty(sequence, "evaluate", { value: evaluate, configurable: true });
  const isEnd = (t: Token) => model.isEogToken(t);
  return {
    /** Tokens sampled, a final end-of-generation token not included (it is never text). */
    count(): number {
      return generated.length - (generated.length && isEnd(generated.at(-1)!) ? 1 : 0);
    },
    /**
     * The text of sampled tokens that were never released (`released` = how many were): non-empty only when
     * generation was cut inside an incomplete character; that character's bytes come out as U+FFFD.
     */
    tail(released: number): string {
      const rest = generated.slice(released).filter((t) => !isEnd(t));
      return rest.length ? model.detokenize(rest, false, generated.slice(Math.max(0, released - CONTEXT), released)) : "";
    },
  };
}
