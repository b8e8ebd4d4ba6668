/** Logprobs in OpenAI's wire shapes: chat (and the Responses API) entries, completions' parallel arrays. */
import type { Generation, PromptLogprob, TokenLogprob } from "../../engine/engine";
import { spellBytes } from "../../engine/token-bytes";
import { alignWhole } from "./logprob-align";

/**
 * Logprobs only while their tokens still spell the answer (generate.ts lines them up with the text as sent,
 * a redacted stretch as one entry); null otherwise, so they never show what the answer does not.
 */
export const spelled = <T extends Spelling>(lp: T[] | undefined, text: string) => (lp && sameText(lp, text) ? lp : undefined);

interface Spelling { token: string; bytes?: number[] }
/** Whether entries spell `text`: by their text, or where an entry carries raw bytes (part of a character) by those. */
function sameText(lp: Spelling[], text: string): boolean {
  if (!lp.some((t) => t.bytes)) return lp.map((t) => t.token).join("") === text;
  return Buffer.concat(lp.map((t) => (t.bytes ? Buffer.from(t.bytes) : Buffer.from(t.token, "utf8")))).equals(Buffer.from(text, "utf8"));
}
/** How an entry is written: a token that is part of a UTF-8 character as OpenAI writes it ("bytes:\\xNN"). */
const wireToken = (t: Spelling) => (t.bytes ? spellBytes(t.bytes) : t.token);

/**
 * A prompt's tokens (completions `echo`) lined up with its text as the answer's are: byte tokens of characters
 * (each alone U+FFFD: CJK, an NBSP on the tiny model) stay an entry each, written by their bytes; a stray byte
 * the text shows as U+FFFD spells that. The first token keeps its null logprob (NaN through the sums).
 */
export function promptSpelled(lp: PromptLogprob[] | undefined, text: string): PromptLogprob[] | undefined {
  if (!lp || spelled(lp, text)) return lp;
  // Entries spelled by their own bytes that do not spell the text (a stray byte the text shows as U+FFFD): lined up
  // where that keeps an entry per token; else one entry per token as they are (the client's own prompt: nothing in
  // it is redacted), since clients count positions by them.
  const aligned = alignWhole(lp.map((t) => ({ ...t, logprob: t.logprob ?? NaN })), text, text, true);
  return aligned && aligned.length === lp.length ? aligned.map((t) => ({ ...t, logprob: Number.isNaN(t.logprob) ? null : t.logprob })) : lp;
}
const bytes = (s: string) => [...Buffer.from(s, "utf8")];

/** Tokens in chat's (and the Responses API's) logprob shape. */
export const logprobEntries = (lp: TokenLogprob[]) => lp.map((t) => ({
  token: wireToken(t), logprob: t.logprob, bytes: t.bytes ?? bytes(t.token),
  top_logprobs: t.top.map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes ?? bytes(a.token) })),
}));

/** A chat choice's (or stream chunk's) logprobs object; null when there are none. */
export const chatLogprobs = (lp: TokenLogprob[] | null | undefined) => (lp ? { content: logprobEntries(lp), refusal: null } : null);

/**
 * Completions logprobs; `from` is where the first token starts in the choice's text (after the echoed
 * prompt and earlier chunks), for text_offset. A prompt's first token has no logprob (null), as OpenAI's.
 */
export function textLogprobs(lp: (TokenLogprob | PromptLogprob)[], from = 0) {
  return {
    tokens: lp.map(wireToken),
    token_logprobs: lp.map((t) => t.logprob),
    // Alternatives with the same text (different token ids) keep the likelier one, as a JSON object can hold only one.
    top_logprobs: lp.map((t) => (t.logprob === null ? null : Object.fromEntries(t.top.toReversed().map((a) => [a.token, a.logprob])))),
    text_offset: textOffsets(lp, from),
  };
}

/**
 * Where each entry starts in the text (UTF-16 units, as the text's own indices): an entry of raw bytes starts at
 * the character its first byte belongs to, and the text moves on once a character's bytes are all there.
 */
function textOffsets(lp: Spelling[], from: number): number[] {
  const offsets: number[] = [];
  let at = from;
  let carry: number[] = [];
  for (const t of lp) {
    if (!t.bytes && carry.length) { at += 1; carry = []; } // bytes that made no character: the text shows one U+FFFD
    offsets.push(at);
    if (!t.bytes) { at += t.token.length; continue; }
    carry.push(...t.bytes);
    let i = 0;
    while (i < carry.length && carry.length - i >= sequenceLength(carry[i]!)) {
      const n = sequenceLength(carry[i]!);
      at += n === 4 ? 2 : 1; // a character beyond the BMP is two UTF-16 units
      i += n;
    }
    carry = carry.slice(i);
  }
  return offsets;
}

/** A UTF-8 sequence's length from its first byte (a stray continuation byte counts as one, as U+FFFD does). */
const sequenceLength = (b: number) => (b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1);

/** A completions choice's logprobs: the echoed prompt's (when asked for) and the generated text's, or null. */
export function choiceTextLogprobs(g: Generation, echo: string | undefined) {
  const generated = spelled(g.logprobs, g.text);
  if (!generated) return null;
  if (echo === undefined) return textLogprobs(generated);
  const prompt = promptSpelled(g.promptLogprobs, echo);
  return prompt ? textLogprobs([...prompt, ...generated]) : null;
}
