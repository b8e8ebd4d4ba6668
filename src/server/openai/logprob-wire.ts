/** Logprobs in OpenAI's wire shapes: chat (and the Responses API) entries, completions' parallel arrays. */
import type { Generation, PromptLogprob, TokenLogprob } from "../../engine/engine";
import { alignWhole } from "./logprob-align";

/**
 * Logprobs only while their tokens still spell the answer (generate.ts lines them up with the text as sent,
 * a redacted stretch as one entry); null otherwise, so they never show what the answer does not.
 */
export const spelled = <T extends { token: string }>(lp: T[] | undefined, text: string) => (lp && lp.map((t) => t.token).join("") === text ? lp : undefined);
/**
 * A prompt's tokens (completions `echo`) lined up with its text as the answer's are: byte tokens of one character
 * (each alone U+FFFD: CJK, an NBSP on the tiny model) become one entry, so they spell the echoed prompt instead of
 * making the whole choice's logprobs null. The first token keeps its null logprob (NaN through the sums).
 */
export function promptSpelled(lp: PromptLogprob[] | undefined, text: string): PromptLogprob[] | undefined {
  if (!lp || spelled(lp, text)) return lp;
  const aligned = alignWhole(lp.map((t) => ({ ...t, logprob: t.logprob ?? NaN })), text, text);
  return aligned?.map((t) => ({ ...t, logprob: Number.isNaN(t.logprob) ? null : t.logprob }));
}
const bytes = (s: string) => [...Buffer.from(s, "utf8")];

/** Tokens in chat's (and the Responses API's) logprob shape. */
export const logprobEntries = (lp: TokenLogprob[]) => lp.map((t) => ({
  token: t.token, logprob: t.logprob, bytes: bytes(t.token),
  top_logprobs: t.top.map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes ?? bytes(a.token) })),
}));

/** A chat choice's (or stream chunk's) logprobs object; null when there are none. */
export const chatLogprobs = (lp: TokenLogprob[] | null | undefined) => (lp ? { content: logprobEntries(lp), refusal: null } : null);

/**
 * Completions logprobs; `from` is where the first token starts in the choice's text (after the echoed
 * prompt and earlier chunks), for text_offset. A prompt's first token has no logprob (null), as OpenAI's.
 */
export function textLogprobs(lp: (TokenLogprob | PromptLogprob)[], from = 0) {
  const offsets: number[] = [];
  lp.reduce((at, t) => (offsets.push(at), at + t.token.length), from);
  return {
    tokens: lp.map((t) => t.token),
    token_logprobs: lp.map((t) => t.logprob),
    // Alternatives with the same text (different token ids) keep the likelier one, as a JSON object can hold only one.
    top_logprobs: lp.map((t) => (t.logprob === null ? null : Object.fromEntries(t.top.toReversed().map((a) => [a.token, a.logprob])))),
    text_offset: offsets,
  };
}

/** A completions choice's logprobs: the echoed prompt's (when asked for) and the generated text's, or null. */
export function choiceTextLogprobs(g: Generation, echo: string | undefined) {
  const generated = spelled(g.logprobs, g.text);
  if (!generated) return null;
  if (echo === undefined) return textLogprobs(generated);
  const prompt = promptSpelled(g.promptLogprobs, echo);
  return prompt ? textLogprobs([...prompt, ...generated]) : null;
}
