/**
 * Every token a generation sampled, seen at the sequence's `evaluate` (what LlamaChat and LlamaCompletion call).
 *
 * Why: node-llama-cpp releases a token (onToken / onTextChunk / the response) only once its text is complete UTF-8.
 * When generation stops at max_tokens (or an abort) in the middle of a multi-byte character, the tokens still held
 * back are never released: usage under-reported them (54 of 128 seen) and their text was dropped. The tally counts
 * what was really sampled and gives back the held-back tail so it can be sent.
 * And: node-llama-cpp does not check max_tokens after a token that starts a split character (it samples one more
 * to complete it), so a cut inside a character generated max_tokens + 1. With a `cap`, the tally answers a request
 * for a token past it with an end-of-generation token instead of sampling (nothing is evaluated for it): the
 * generation ends at exactly `cap` tokens, `capped` says so, and the split character's bytes come back in `tail`.
 */
import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { TEXT_CONTEXT } from "./context-text";
import { earlyText, type EarlyRelease } from "./early-text";
import { tokenBytes } from "./token-bytes";

/** What a tally is told besides the sequence and model. */
export interface TallyOptions {
  /** Called at each sampled token, at once (node-llama-cpp's onToken can come later: it holds tokens back). */
  onSampled?: () => void;
  /** max_tokens: never sample more than this. */
  cap?: number;
  /** Tokens the generation follows (the prompt's tail): the tail's text is detokenized after them. */
  context?: readonly Token[];
  /** Send the complete characters of tokens node-llama-cpp still holds back (early-text.ts); off when absent. */
  early?: EarlyRelease;
}

/** Wraps `sequence.evaluate` (after any other wrapper, e.g. logprobs) to record each sampled token. */
export function tallyTokens(sequence: LlamaContextSequence, model: LlamaModel, { onSampled, cap, context = [], early }: TallyOptions = {}) {
  const generated: Token[] = [];
  const end = model.tokens.eos ?? model.tokens.eot;
  let capped = false, ended = false;
  const isEnd = (t: Token) => model.isEogToken(t);
  /** The text of sampled tokens `from` to `to`, detokenized after what came before them. */
  const textOf = (from: number, to = generated.length): string => {
    const rest = generated.slice(from, to).filter((t) => !isEnd(t));
    const before = [...context.slice(-TEXT_CONTEXT), ...generated.slice(Math.max(0, from - TEXT_CONTEXT), from)].slice(-TEXT_CONTEXT);
    return rest.length ? model.detokenize(rest, false, before) : "";
  };
  const ahead = early && earlyText(early, generated, textOf, tokenBytes(model));
  type Evaluate = LlamaContextSequence["evaluate"];
  const inner: Evaluate = sequence.evaluate;
  const evaluate: Evaluate = async function* (tokens, options) {
    const it = inner.call(sequence, tokens, options);
    let input: Token | Token[] | void = undefined;
    try {
      while (true) {
        if (ended && end != null) {
          yield end; // told to end (a stop string found in the answer, stop-text.ts): end without sampling
          return;
        }
        if (cap != null && cap > 0 && generated.length >= cap && end != null) {
          capped = true; // node-llama-cpp asked for a token past max_tokens: end here instead
          yield end;
          return;
        }
        const r = await it.next(input);
        if (r.done) return;
        generated.push(r.value);
        onSampled?.();
        input = yield r.value;
        // node-llama-cpp has dealt with the token (released it or held it back) and asks for the next one.
        ahead?.check();
      }
    } finally {
      await it.return();
    }
  };
  Object.defineProperty(sequence, "evaluate", { value: evaluate, configurable: true });
  return {
    /** The generation was ended at `cap` by the tally (report it as max_tokens, whatever node-llama-cpp says). */
    get capped() { return capped; },
    /** Every token sampled so far, in order (thought-chunks.ts follows node-llama-cpp's chunks through them). */
    sampled: (): readonly Token[] => generated,
    /** Tokens sampled, a final end-of-generation token not included (it is never text). */
    count(): number {
      return generated.length - (generated.length && isEnd(generated.at(-1)!) ? 1 : 0);
    },
    /**
     * The text of sampled tokens that were never released (`released` = how many were): non-empty only when
     * generation was cut inside an incomplete character; that character's bytes come out as U+FFFD.
     */
    tail(released: number): string {
      return textOf(released);
    },
    /** Ends the generation: the next token node-llama-cpp asks for is an end token, not sampled. */
    end: () => { ended = true; },
    /**
     * What node-llama-cpp's text callback should be: with `early`, its chunks less what was sent ahead of them;
     * without, `onText` itself.
     */
    textCallback(onText: ((text: string) => void) | undefined): ((text: string) => void) | undefined {
      return ahead ? ahead.fromEngine : onText;
    },
  };
}
