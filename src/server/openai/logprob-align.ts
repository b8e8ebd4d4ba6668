/**
 * Lines up token logprobs with the text the client is actually sent. Generated text passes the response
 * filter (secret scanner) first, which holds some back and may rewrite it (`[REDACTED:rule]`), so the
 * tokens the model sampled and the text sent can differ. The rule kept here: a token is shown only where
 * its text is exactly the text sent at that spot. A rewritten stretch becomes one entry whose token is the
 * text sent in its place, with the summed logprob of the tokens it replaced and no alternatives, so the
 * entries of a chunk always spell the chunk (byte tokens by their raw bytes) and never show a redacted secret (or
 * its alternatives).
 * Text is sent only up to a token boundary; a token still being consumed waits for the next piece.
 * When tokens and text cannot be matched at all (text the tokens do not spell), logprobs are null from
 * there on, and the text still flows.
 */
import type { TokenLogprob } from "../../engine/engine";
import { isUtf8 } from "../../engine/token-bytes";

/** A piece of text to send and its logprobs (null: they could not be matched to it). */
export interface AlignedPiece { text: string; logprobs: TokenLogprob[] | null }

function commonSuffix(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a[a.length - 1 - n] === b[b.length - 1 - n]) n++;
  return n;
}

/** Part of a UTF-8 character: its raw bytes known, or (bytes unknown) its text alone reads U+FFFD. */
const isByteToken = (t: TokenLogprob) => t.bytes !== undefined || t.token.includes("\uFFFD");

/** An entry spelled by its text alone (no raw bytes). */
const asText = ({ token, logprob, top }: TokenLogprob): TokenLogprob => ({ token, logprob, top });

export class LogprobAligner {
  /** `keepEmpty`: an entry also for tokens with no text (an echoed prompt's BOS or bare "▁"), not skipped. */
  constructor(private readonly keepEmpty = false) {}
  private tokens: TokenLogprob[] = [];
  /** Generated text the filter has consumed and not yet sent, and the filter's output for it. */
  private raw = "";
  private out = "";
  private lost = false;

  /**
   * A sampled token, in order; called before its text reaches `push`. Empty pieces (a control token) are skipped,
   * but not a byte token's (the middle byte of a character reads "" after the one before it).
   */
  token(t: TokenLogprob) {
    if (t.token || t.bytes || this.keepEmpty) this.tokens.push(t);
  }

  /**
   * `raw`: generated text the filter consumed with this output (none of it is held back any more);
   * `output`: what the filter returned for it. `final`: nothing more comes (tokens past the text are a stop
   * sequence's, and are left out). Returns what may be sent now.
   */
  push(raw: string, output: string, final = false): AlignedPiece[] {
    this.raw += raw;
    this.out += output;
    const pieces: AlignedPiece[] = [];
    const entries: TokenLogprob[] = [];
    let text = "";
    const emit = (entry: TokenLogprob | TokenLogprob[] | undefined, rawLen: number, outLen: number, used: number) => {
      if (entry && outLen > 0) { entries.push(...[entry].flat()); text += this.out.slice(0, outLen); }
      this.raw = this.raw.slice(rawLen);
      this.out = this.out.slice(outLen);
      this.tokens.splice(0, used);
    };
    while (!this.lost && (this.raw || this.out)) {
      const t = this.tokens[0];
      if (!t || !this.raw) { this.lost = true; break; }
      // An echoed prompt keeps an entry for a token with no text (its BOS, a bare "▁"): clients count positions by them.
      if (this.keepEmpty && !t.token && !t.bytes) {
        const spaces = this.unspelledSpaces();
        if (spaces) { emit({ ...asText(t), token: this.raw.slice(0, spaces) }, spaces, spaces, 1); continue; }
        entries.push(asText(t));
        this.tokens.shift();
        continue;
      }
      if (t.bytes) { // an entry per token where their bytes are exactly the text's; else as text below
        const bytes = this.exactBytes();
        if (bytes) { emit(bytes.entries, bytes.length, bytes.length, bytes.used); continue; }
        // A byte whose text is "" (after a stray first byte, which spelled the text's U+FFFD): its own empty entry.
        if (!t.token) { entries.push(asText(t)); this.tokens.shift(); continue; }
      }
      if (this.raw.startsWith(t.token)) {
        // Spelled by its text (a lone byte token's U+FFFD is what is sent): its raw bytes are not that text's.
        if (this.out.startsWith(t.token)) { emit(asText(t), t.token.length, t.token.length, 1); continue; }
        if (!this.rewrite(final, emit)) break;
        continue;
      }
      if (t.token.startsWith(this.raw)) {
        if (!final) break; // the token is still being consumed
        // Cut short by a stop sequence: the part that was generated as text.
        if (this.out === this.raw) { emit({ ...asText(t), token: this.raw }, this.raw.length, this.out.length, 1); continue; }
        if (!this.rewrite(final, emit)) break;
        continue;
      }
      if (!t.bytes && t.token.includes("\uFFFD")) {
        const bytes = this.bytePieces(final);
        if (bytes === undefined) break;
        if (bytes) { emit(bytes.entries, bytes.length, bytes.length, bytes.used); continue; }
      }
      const spaced = this.spacing(t, final);
      if (spaced === undefined) break;
      if (spaced) { emit(spaced.entry, spaced.length, spaced.length, 1); continue; }
      this.lost = true; // a token that is not the text (template syntax, a different spelling)
    }
    if (text) pieces.push({ text, logprobs: entries });
    if (this.lost && this.out) {
      pieces.push({ text: this.out, logprobs: null });
      this.out = "";
      this.raw = "";
    }
    if (final) { this.raw = ""; this.out = ""; this.tokens = []; }
    return pieces;
  }

  /**
   * Spaces at the text's start that the token after an empty one (a bare "▁", read "" after what precedes it) does not
   * spell: that empty token's, as in an echoed " é" (▁ ▁ <0xC3> <0xA9>). 0 when the next token spells them, or when the
   * next one is empty too (the last of a run of empty tokens takes them).
   */
  private unspelledSpaces(): number {
    const next = this.tokens[1];
    if (!next || (!next.token && !next.bytes)) return 0;
    const lead = /^ */.exec(this.raw)![0].length;
    const spelt = next.bytes ? 0 : /^ */.exec(next.token)![0].length;
    const spaces = Math.max(0, lead - spelt);
    return spaces && this.out.slice(0, spaces) === this.raw.slice(0, spaces) ? spaces : 0;
  }

  /**
   * Leading tokens with raw bytes (parts of characters) whose bytes are exactly the text's next characters: an entry
   * each, carrying its bytes (the wire spells them "bytes:\\xNN", as OpenAI does), so a client counting positions by
   * tokens (lm-eval's echo scoring) finds one entry per token. As many as make whole characters of the text so far;
   * the rest wait for theirs (a stream's next piece) or, at the end, were cut off with a stop. Null when not even the
   * first character matches (a stray byte the text shows as U+FFFD): handled as text.
   */
  private exactBytes(): { entries: TokenLogprob[]; length: number; used: number } | null {
    const acc: number[] = [];
    let used = 0, length = 0;
    for (let k = 0; k < this.tokens.length && this.tokens[k]!.bytes; k++) {
      acc.push(...this.tokens[k]!.bytes!);
      if (!isUtf8(acc)) continue; // a character still being spelled
      const text = Buffer.from(acc).toString("utf8");
      if (!this.raw.startsWith(text)) break;
      used = k + 1;
      length = text.length;
    }
    if (!used || this.out.slice(0, length) !== this.raw.slice(0, length)) return null;
    return { entries: this.tokens.slice(0, used), length, used };
  }

  /**
   * Tokens that are bytes of one character whose bytes are not known (each alone shows as U+FFFD; or a stray byte):
   * one entry for the characters they make, up to where the next whole token's text starts. Undefined: wait for more
   * text; null: no match.
   */
  private bytePieces(final: boolean): { entries: TokenLogprob[]; length: number; used: number } | null | undefined {
    let used = 0, logprob = 0;
    while (used < this.tokens.length && isByteToken(this.tokens[used]!)) logprob += this.tokens[used++]!.logprob;
    const next = this.tokens[used];
    // Each byte token makes at most one character (two UTF-16 units).
    const most = Math.min(2 * used, this.raw.length);
    let length = -1;
    if (next) {
      for (let m = 1; m <= most && length < 0; m++) if (this.raw.startsWith(next.token, m) || next.token.startsWith(this.raw.slice(m))) length = m;
    } else if (final) length = most;
    if (length < 0) return !next && !final ? undefined : null;
    if (length > this.raw.length || this.raw.length === length && !final && !next) return undefined;
    if (this.out.slice(0, length) !== this.raw.slice(0, length)) return null;
    // Alternatives of the first byte (what was chosen between at that step), so every entry has the asked-for count.
    return { entries: [{ token: this.raw.slice(0, length), logprob, top: this.tokens[0]!.top }], length, used };
  }

  /**
   * A token spelled with other leading spaces than the text has at its spot: a SentencePiece piece's leading
   * space depends on what it is detokenized after, and node-llama-cpp's text and our per-token pieces are
   * detokenized after different tokens (a bare "▁" alone is "", after a word " "). One entry spelling the
   * text's spaces and the token's word. Undefined: wait for more text; null: no match.
   */
  private spacing(t: TokenLogprob, final: boolean): { entry: TokenLogprob; length: number } | null | undefined {
    const word = t.token.replace(/^ +/, "");
    const lead = /^ */.exec(this.raw)![0].length;
    if (!word || lead === t.token.length - word.length) return null;
    const rest = this.raw.slice(lead);
    let length: number;
    if (rest.startsWith(word)) length = lead + word.length;
    else if (word.startsWith(rest)) {
      if (!final) return undefined; // the token is still being consumed
      length = this.raw.length; // cut short by a stop sequence
    } else return null;
    if (this.out.slice(0, length) !== this.raw.slice(0, length)) return null;
    return { entry: { ...asText(t), token: this.raw.slice(0, length) }, length };
  }

  /**
   * The filter rewrote text starting at the next token: the rewritten stretch ends where the rest of the
   * output matches the rest of the text again (their common suffix), rounded up to a whole token.
   * Returns false to wait for more text.
   */
  private rewrite(final: boolean, emit: (e: TokenLogprob | undefined, rawLen: number, outLen: number, used: number) => void): boolean {
    const same = commonSuffix(this.raw, this.out);
    const rawLen = this.raw.length - same;
    if (rawLen === 0) { this.lost = true; return false; }
    let covered = 0, used = 0, logprob = 0, spelled = "";
    while (covered < rawLen && used < this.tokens.length) {
      const t = this.tokens[used++]!;
      covered += t.token.length; logprob += t.logprob; spelled += t.token;
    }
    if (covered < rawLen) { this.lost = true; return false; }
    if (covered > this.raw.length) {
      if (!final) return false;
      spelled = spelled.slice(0, this.raw.length);
      covered = this.raw.length;
    }
    if (spelled !== this.raw.slice(0, covered)) { this.lost = true; return false; }
    const outLen = this.out.length - same + (covered - rawLen);
    emit({ token: this.out.slice(0, outLen), logprob, top: [] }, covered, outLen, used);
    return true;
  }
}

/** A whole answer at once: the tokens that spell `raw`, lined up with `sent` (the filtered text); null when they cannot be. */
export function alignWhole(tokens: TokenLogprob[], raw: string, sent: string, keepEmpty = false): TokenLogprob[] | null {
  const a = new LogprobAligner(keepEmpty);
  for (const t of tokens) a.token(t);
  const pieces = a.push(raw, sent, true);
  if (pieces.some((p) => p.logprobs === null)) return null;
  return pieces.flatMap((p) => p.logprobs!);
}
