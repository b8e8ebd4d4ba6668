/**
 * llama.cpp's tokenizer takes time quadratic in the length of a run of characters its vocabulary lacks (a
 * SentencePiece model's byte fallback; on the tiny model 40,000 CJK characters take 0.25 s, 100,000 1.9 s, 333,000
 * 27 s), synchronously, on the event loop: one request with a long prompt froze every other request and /health
 * (red team, through the binary). A text longer than PIECE is first counted in pieces of PIECE characters, which is
 * linear, and a text that cannot fit is refused on that count before it is tokenized whole. What is tokenized whole
 * is then at most about `limit` tokens, and a run of characters the vocabulary lacks is at least one token per
 * character, so its cost is bounded by the limit. A token that spans a cut is counted in both pieces: SLACK_PER_CUT
 * per cut is taken off the count before it is compared, so a text that fits is never refused for that.
 */
export const PIECE = 4096;
const SLACK_PER_CUT = 8;

/**
 * The token count of `text` from its pieces, less the slack for the cuts, once it is above `limit`; undefined
 * while it is not (a short text is never counted here). Stops counting as soon as the limit is passed.
 */
export function countBeyond(tokenize: (text: string) => number, text: string, limit: number): number | undefined {
  if (text.length <= PIECE) return undefined;
  let count = 0, cuts = 0;
  for (let at = 0; at < text.length; cuts++) {
    let end = Math.min(at + PIECE, text.length);
    // Never between the two halves of a surrogate pair (the piece would end in a character that is not one).
    if (end < text.length && /[\uDC00-\uDFFF]/.test(text[end]!)) end--;
    count += tokenize(text.slice(at, end));
    at = end;
    const sure = count - SLACK_PER_CUT * cuts;
    if (sure > limit) return sure;
  }
  return undefined;
}

/**
 * The same over the string parts of a rendered chat (its special tokens left out, which only lowers the count),
 * joined: the count changes only at the seams.
 */
export function countAllBeyond(tokenize: (text: string) => number, texts: readonly string[], limit: number): number | undefined {
  // Every chat comes here: a short one is not copied into one string first.
  if (texts.reduce((n, t) => n + t.length, 0) <= PIECE) return undefined;
  return countBeyond(tokenize, texts.join(""), limit);
}
