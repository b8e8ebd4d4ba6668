/**
 * Per-token log probabilities, recorded from the generation itself: the sequence's `evaluate` (what
 * LlamaChat and LlamaCompletion call) is replaced on this one sequence by node-llama-cpp's
 * `evaluateWithMetadata` with the same options, so sampling (temperature, seed, grammar, bias, stop)
 * is exactly the normal path's; only the distribution each token was drawn from is kept on the side.
 * The probabilities are node-llama-cpp's: after top_k/top_p/temperature, the distribution sampled from.
 */
import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { AltLogprob, PromptLogprob, TokenLogprob } from "./engine";
import { TEXT_CONTEXT } from "./context-text";
import { isUtf8, partialBytes, spellBytes, tokenBytes } from "./token-bytes";

/**
 * An alternative as listed: its text, or where that is not whole UTF-8 (a byte token reads "\uFFFD", so all of them
 * looked alike) OpenAI's "bytes:\\xNN" spelling with its raw bytes from the vocabulary.
 */
function alternative(model: LlamaModel, t: Token, text: string, lp: number): AltLogprob {
  // By its bytes, not its text: after a character's first byte the next one's text reads "", not U+FFFD.
  const raw = partialBytes(model, t);
  return raw ? { token: spellBytes(raw), logprob: lp, bytes: raw } : { token: text, logprob: lp };
}

/**
 * A chosen token's raw bytes where they are not whole UTF-8 (the wire spells it as alternatives are). Read from the
 * vocabulary, not the text: after the first byte of a character, the next one's text reads "", not U+FFFD.
 */
function withBytes(model: LlamaModel, t: Token): { bytes?: number[] } {
  const raw = partialBytes(model, t);
  return raw ? { bytes: raw } : {};
}

const logprob = (p: number | undefined) => Math.log(Math.max(p ?? 0, Number.MIN_VALUE));

/**
 * `onToken`: each record as its token is sampled, before its text is passed on (streams line them up with the text).
 * `context`: tokens the generation follows (a completion's prompt), so the first piece keeps its leading space.
 */
export function recordLogprobs(sequence: LlamaContextSequence, model: LlamaModel, top: number, onToken?: (t: TokenLogprob) => void, context: readonly Token[] = []) {
  const recent: Token[] = context.slice(-TEXT_CONTEXT); // the context of the next piece, kept to TEXT_CONTEXT tokens
  const records: TokenLogprob[] = [];
  const piece = (t: Token) => model.detokenize([t], false, recent);
  type Evaluate = LlamaContextSequence["evaluate"];
  const evaluate: Evaluate = async function* (tokens, options) {
    const it = sequence.evaluateWithMetadata(tokens, { probabilities: true }, options);
    let input: Token | Token[] | void = undefined;
    try {
      while (true) {
        const r = await it.next(input);
        if (r.done) return;
        const alternatives = [...r.value.probabilities].slice(0, top).map(([t, p]) => alternative(model, t, piece(t), logprob(p)));
        const record: TokenLogprob = { token: piece(r.value.token), logprob: logprob(r.value.probabilities.get(r.value.token)), top: alternatives, ...withBytes(model, r.value.token) };
        // A stream takes each record as it comes and keeps none: kept, n=4 top-20 streams held ~40 MB each to their end
        // (load run), far past the 8 MiB a connection's backlog may hold.
        if (onToken) onToken(record);
        else records.push(record);
        recent.push(r.value.token);
        if (recent.length > TEXT_CONTEXT) recent.shift();
        input = yield r.value.token;
      }
    } finally {
      await it.return();
    }
  };
  Object.defineProperty(sequence, "evaluate", { value: evaluate, configurable: true });
  /** Every sampled token, in order (generate.ts lines them up with the text as sent); empty when onToken took them. */
  return { records };
}

/**
 * Each prompt token spelled by its own bytes from the vocabulary (one entry per token, exactly, whatever the tokens
 * around it: a piece detokenized after its neighbours read "" for a bare ▁ or a character's later byte, and echoed
 * prompts lost entries); the first token with text loses the leading space the model's detokenizer drops at a text's
 * start (SentencePiece's added space). Undefined for vocabularies whose bytes are not known (then detokenized).
 */
function promptSpelling(model: LlamaModel): ((t: Token) => { token: string; bytes?: number[] }) | undefined {
  const spell = tokenBytes(model);
  if (!spell) return undefined;
  let started = false;
  return (t) => {
    const raw = spell(t);
    if (!raw) return { token: model.detokenize([t], false), ...withBytes(model, t) };
    let b = [...raw];
    if (!started && b.length) {
      started = true;
      if (b[0] === 0x20 && !model.detokenize([t], false).startsWith(" ")) b = b.slice(1);
    }
    return isUtf8(b) ? { token: Buffer.from(b).toString("utf8") } : { token: "", bytes: b };
  };
}

/**
 * The prompt's own logprobs (completions `echo` with `logprobs`): the prompt is evaluated into the sequence
 * with the model's distribution kept at each position (temperature 1, nothing cut), so position i tells how
 * likely prompt token i+1 was. The last token is left for the generation to evaluate (node-llama-cpp reuses
 * the rest). `input` starts with BOS when the model adds one; BOS itself is not listed. The first listed
 * token has no logprob (null) unless a BOS came before it.
 */
export async function promptLogprobs(sequence: LlamaContextSequence, model: LlamaModel, input: Token[], top: number, bos: boolean): Promise<PromptLogprob[]> {
  const head = input.slice(0, -1);
  const out = await sequence.controlledEvaluate(head.map((t) => [t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }]));
  const records: PromptLogprob[] = [];
  const spelling = promptSpelling(model);
  input.forEach((t, i) => {
    if (bos && i === 0) return;
    const dist = i > 0 ? out[i - 1]?.next.probabilities : undefined;
    records.push({
      ...(spelling?.(t) ?? { token: model.detokenize([t], false, input.slice(Math.max(bos ? 1 : 0, i - TEXT_CONTEXT), i)), ...withBytes(model, t) }),
      logprob: dist ? logprob(dist.get(t)) : null,
      top: dist ? [...dist].slice(0, top).map(([a, p]) => alternative(model, a, model.detokenize([a], false, input.slice(Math.max(0, i - TEXT_CONTEXT), i)), logprob(p))) : [],
    });
  });
  return records;
}
