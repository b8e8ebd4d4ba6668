/**
 * Per-token log probabilities, recorded from the generation itself: the sequence's `evaluate` (what
 * LlamaChat and LlamaCompletion call) is replaced on this one sequence by node-llama-cpp's
 * `evaluateWithMetadata` with the same options, so sampling (temperature, seed, grammar, bias, stop)
 * is exactly the normal path's; only the distribution each token was drawn from is kept on the side.
 * The probabilities are node-llama-cpp's: after top_k/top_p/temperature, the distribution sampled from.
 */
import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { TokenLogprob } from "./engine";

/** Tokens of context a piece is detokenized after, so leading spaces come out as they do in the text. */
const CONTEXT = 8;

export function recordLogprobs(sequence: LlamaContextSequence, model: LlamaModel, top: number) {
  const generated: Token[] = [];
  const records: TokenLogprob[] = [];
  const piece = (t: Token) => model.detokenize([t], false, generated.slice(-CONTEXT));
  const logprob = (p: number | undefined) => Math.log(Math.max(p ?? 0, Number.MIN_VALUE));
  type Evaluate = LlamaContextSequence["evaluate"];
  const evaluate: Evaluate = async function* (tokens, options) {
    const it = sequence.evaluateWithMetadata(tokens, { probabilities: true }, options);
    let input: Token | Token[] | void = undefined;
    try {
      while (true) {
        const r = await it.next(input);
        if (r.done) return;
        const alternatives = [...r.value.probabilities].slice(0, top).map(([t, p]) => ({ token: piece(t), logprob: logprob(p) }));
        records.push({ token: piece(r.value.token), logprob: logprob(r.value.probabilities.get(r.value.token)), top: alternatives });
        generated.push(r.value.token);
        input = yield r.value.token;
      }
    } finally {
      await it.return();
    }
  };
  Object.defineProperty(sequence, "evaluate", { value: evaluate, configurable: true });
  return {
    /**
     * The tokens that spell `text` (a stop sequence's held-back tokens are left out; a token that runs past
     * the end is cut to it). Undefined when the tokens do not spell it, so a logprob never shows text the
     * answer does not (a template's hidden syntax, a filtered secret).
     */
    spelling(text: string): TokenLogprob[] | undefined {
      const out: TokenLogprob[] = [];
      let at = 0;
      for (const r of records) {
        if (at >= text.length) break;
        const rest = text.length - at;
        out.push(r.token.length > rest ? { ...r, token: r.token.slice(0, rest) } : r);
        at += Math.min(r.token.length, rest);
      }
      return out.map((r) => r.token).join("") === text ? out : undefined;
    },
  };
}
