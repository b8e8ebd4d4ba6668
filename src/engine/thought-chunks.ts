/**
 * A reasoning model's generation, told apart as node-llama-cpp releases it: the thought segment (`<think>…</think>`
 * and the like, as the model's chat wrapper defines it) and the answer.
 *
 * Why: node-llama-cpp's text callback and `response` leave thought segments out, so a reasoning model's thinking was
 * dropped unseen (a stream sat silent while it thought), and the held-back tail at a cut was taken as the tokens
 * after the answer's released ones: with a thought before the answer, that repeated the answer's last tokens. Here
 * every response chunk (text or segment) is followed through the sampled tokens: the answer's text goes to `onText`,
 * the thought's to `onThought`, each token's logprob record goes out with its answer text (a thought's are left
 * out: OpenAI gives none for reasoning either), and `released` says how many sampled tokens node-llama-cpp has dealt
 * with (released as text, or taken as a segment's opening or closing), so only what it still holds is the tail.
 * The answer's text is its tokens' own, read after the tokens sampled before them (answer(); the streamed and the
 * unstreamed answer are this same text).
 */
import type { LlamaChatResponseChunk, Token } from "node-llama-cpp";
import type { TokenLogprob } from "./engine";
import { TEXT_CONTEXT } from "./context-text";

export interface ThoughtChunkHooks {
  /** Sampled tokens so far, in order (token-tally.ts). */
  sampled: () => readonly Token[];
  /** The text of `tokens` after `trail` (the model's detokenize with its last tokens as context). */
  detokenize: (tokens: readonly Token[], trail: readonly Token[]) => string;
  onText?: (text: string) => void;
  onThought?: (text: string) => void;
  /** Streaming with logprobs: an answer token's record, just before its text reaches onText. */
  onLogprob?: (record: TokenLogprob) => void;
}

export function thoughtChunks({ sampled, detokenize, onText, onThought, onLogprob }: ThoughtChunkHooks) {
  // Sampled tokens before `sure` are accounted for; `taken`: sampled when a segment opened or closed (its markers
  // taken); `unsure`: a chunk whose tokens are not the sampled ones (node-llama-cpp re-tokenizes the text held before
  // a stop trigger, e.g. a split character before `</think>`): it covers the sampled tokens up to the next chunk found.
  let sure = 0, taken = 0, unsure: "text" | "other" | undefined, open = false, thought = "", thoughtTokens = 0, answer = "";
  const records: (TokenLogprob | undefined)[] = [];
  const kept: TokenLogprob[] = [];
  /** The records of sampled tokens `from` to `to` go out with the answer's text (streaming) or are kept (its logprobs); or are dropped. */
  const settle = (from: number, to: number, isAnswer: boolean) => {
    for (let i = from; i < to; i++) {
      const r = records[i];
      if (r && isAnswer) onLogprob ? onLogprob(r) : kept.push(r);
      records[i] = undefined;
    }
  };
  /** Where `run` starts in the sampled tokens, from `from` on; -1 when it is not there. */
  const find = (tokens: readonly Token[], from: number, run: readonly Token[]) => {
    for (let i = from; i + run.length <= tokens.length; i++) {
      if (run.every((t, k) => tokens[i + k] === t)) return i;
    }
    return -1;
  };
  return {
    /** For recordLogprobs: every sampled token's record, held until its chunk says whose it is. */
    record(r: TokenLogprob) { records.push(r); },
    /** node-llama-cpp's onResponseChunk. */
    chunk(c: LlamaChatResponseChunk) {
      const tokens = sampled();
      const kind = c.type === undefined ? "text" : "other";
      let text = c.text;
      if (c.tokens.length) {
        const at = find(tokens, sure, c.tokens);
        // The answer's text after the tokens sampled before it: node-llama-cpp's own chunk text, once a thought came
        // first, was read without them, and a SentencePiece vocabulary's word-start space was dropped from every chunk
        // ("thethe" streamed, "the the" unstreamed).
        if (at >= 0 && kind === "text") text = detokenize(c.tokens, tokens.slice(Math.max(0, at - TEXT_CONTEXT), at));
        if (at < 0) unsure ??= kind;
        else {
          settle(sure, at, unsure === "text"); // an unsure chunk's tokens, or a segment's markers
          if (unsure === "other") thoughtTokens += at - sure;
          if (kind === "other") thoughtTokens += c.tokens.length;
          settle(at, at + c.tokens.length, kind === "text");
          sure = at + c.tokens.length;
          unsure = undefined;
        }
      }
      if (c.type === "segment" && (c.segmentStartTime || c.segmentEndTime)) taken = tokens.length;
      if (c.type === "segment" && c.segmentType === "thought") {
        open = !c.segmentEndTime;
        if (c.text) { thought += c.text; onThought?.(c.text); }
      } else if (c.type === undefined && text) { answer += text; onText?.(text); }
    },
    /** Sampled tokens node-llama-cpp has dealt with: the rest is the held-back tail (token-tally.ts tail()). */
    released: () => (unsure ? sampled().length : Math.max(sure, taken)),
    /** At the end: the records of what is left go with the answer's text when the tail is the answer's. */
    end(answer: boolean) {
      settle(unsure === "text" ? sure : Math.max(sure, taken), records.length, answer || unsure === "text");
    },
    /** Generation ended inside the thought (max_tokens, or no closing): a held-back tail is the thought's. */
    inThought: () => open,
    /** The thought's text so far. */
    thought: () => thought,
    /** The answer's text so far, as sent to onText (node-llama-cpp's response reads its chunks differently). */
    answer: () => answer,
    /**
     * Sampled tokens the thought's text stands for so far (a re-tokenized run counts what was sampled, not its new
     * tokens: reasoning_tokens came out above completion_tokens), an unsure thought at the end with what follows it.
     */
    thoughtTokens: () => thoughtTokens + (unsure === "other" ? sampled().length - sure : 0),
    /** Not streaming, with logprobs: the answer tokens' records, in order. */
    answerRecords: () => kept,
  };
}
