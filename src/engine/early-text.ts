/**
 * Streams the complete characters of sampled tokens that node-llama-cpp still holds back.
 *
 * Why: node-llama-cpp holds a token whose text ends in U+FFFD until a later token's text does not, so a run of
 * byte tokens (an invalid byte, or one split character after another) kept the rest of a generation back (on the
 * random test models, all 16 tokens of 2 prompts in 9 arrived at the end). llama-server holds back only an
 * incomplete UTF-8 sequence at the very end (its validate_utf8: a lead byte whose continuation bytes have not all
 * come). Here, once node-llama-cpp has dealt with a token and asks for the next one, the held tokens' text is sent
 * up to such an incomplete sequence, and node-llama-cpp's own chunks later lose what was already sent. The
 * streamed text stays exactly the text node-llama-cpp releases: only a prefix of it goes out earlier.
 *
 * node-llama-cpp also holds text back for other reasons: a stop string may be beginning (it is then never sent).
 * Text that could be the start of one of `holdFor` (the template's stop strings), or holds one, is left to
 * node-llama-cpp, from the start of the token it begins in. The caller turns this off where node-llama-cpp may
 * hold or drop text for any other reason (functions, grammars, segments, ignored start text, logprobs lined up
 * with the text, a request's own stop strings: see chatEarly).
 */
import { SpecialTokensText, type ChatWrapper, type ChatWrapperGeneratedContextState, type LlamaText, type Token } from "node-llama-cpp";

/** What early release needs from the generation. */
export interface EarlyRelease {
  /** Where streamed text goes (the request's onText). */
  send: (text: string) => void;
  /** How many sampled tokens node-llama-cpp has released so far (its onToken). */
  released: () => number;
  /** Stop strings node-llama-cpp matches against the text (the user's and the chat template's). */
  holdFor: readonly string[];
}

const TRAILING_REPLACEMENT = /\uFFFD+$/;

/**
 * `generated`: every sampled token so far (the tally's list); `textOf(from, to)`: the text of those tokens;
 * `bytesOf`: a token's bytes (token-bytes.ts tokenBytes), where the vocabulary tells them.
 * Call `check` when node-llama-cpp asks for the next token; pass node-llama-cpp's text chunks through `fromEngine`.
 */
export function earlyText({ send, released, holdFor }: EarlyRelease, generated: readonly Token[],
  textOf: (from: number, to: number) => string, bytesOf: ((t: Token) => readonly number[] | undefined) | undefined) {
  let ahead = ""; // sent, not yet released by node-llama-cpp
  return {
    check() {
      const from = released();
      if (generated.length <= from) return;
      const open = bytesOf && incompleteTokens(generated, from, bytesOf);
      // Bytes unknown: every trailing U+FFFD may still change.
      const upTo = (to: number) => (open === undefined ? textOf(from, to).replace(TRAILING_REPLACEMENT, "") : textOf(from, to));
      let to = generated.length - (open ?? 0);
      let text = upTo(to);
      const free = stopFree(text, holdFor);
      // node-llama-cpp drops the whole token a stop string begins in (text before the stop in it too): end before it.
      while (text.length > free && to > from) text = upTo(--to);
      if (text.length > ahead.length && text.startsWith(ahead)) {
        send(text.slice(ahead.length));
        ahead = text;
      }
    },
    fromEngine(text: string) {
      if (!ahead) return send(text);
      if (ahead.startsWith(text)) {
        ahead = ahead.slice(text.length);
        return;
      }
      // The chunk goes past what was sent ahead (or, never seen, differs from it): send what was not sent.
      let same = 0;
      while (same < ahead.length && same < text.length && ahead[same] === text[same]) same++;
      ahead = "";
      if (same < text.length) send(text.slice(same));
    },
  };
}

/**
 * How many of the last tokens (from `from` on) hold an incomplete UTF-8 sequence at the end: the last lead byte,
 * with only continuation bytes after it and fewer than it needs (llama-server's validate_utf8 looks for the same,
 * but also holds a lead byte already followed by another byte, which can never complete); undefined when a
 * token's bytes are unknown.
 */
export function incompleteTokens(tokens: readonly Token[], from: number, bytesOf: (t: Token) => readonly number[] | undefined): number | undefined {
  const bytes: number[] = [], sizes: number[] = [];
  for (let i = tokens.length - 1; i >= from && bytes.length < 4; i--) {
    const b = bytesOf(tokens[i]!);
    if (!b) return undefined;
    bytes.unshift(...b);
    sizes.unshift(b.length);
  }
  let open = 0;
  for (let i = 1; i <= Math.min(4, bytes.length); i++) {
    const c = bytes[bytes.length - i]!;
    if ((c & 0xc0) === 0x80) continue; // a continuation byte: look further back for its lead byte
    const need = (c & 0xe0) === 0xc0 ? 2 : (c & 0xf0) === 0xe0 ? 3 : (c & 0xf8) === 0xf0 ? 4 : 0;
    if (i < need) open = i;
    break; // any other byte ends the look-back (a lead byte followed by a non-continuation byte is already invalid)
  }
  let k = 0;
  for (let covered = 0; covered < open; k++) covered += sizes[sizes.length - 1 - k]!;
  return k;
}

/**
 * How much of `text` (the held text, from where node-llama-cpp last released) no stop string can still claim:
 * it ends before the first place a stop string occurs, or where the rest is the beginning of one.
 */
export function stopFree(text: string, stops: readonly string[]): number {
  let end = text.length;
  for (const stop of stops) {
    if (!stop) continue;
    const at = text.indexOf(stop);
    if (at >= 0 && at < end) end = at;
    for (let k = Math.min(stop.length - 1, text.length); k > 0 && text.length - k < end; k--) {
      if (text.endsWith(stop.slice(0, k))) { end = text.length - k; break; }
    }
  }
  return end;
}

/**
 * Whether a chat generation may release early, and the template's stop strings to respect: only when
 * node-llama-cpp holds text for no other reason than split characters and those (no functions, grammar, logprobs
 * or stop strings of the request, a template without segments, prefix triggers, re-render triggers or ignored start
 * text). A request's stop strings turn it off: when one is found inside a held run, node-llama-cpp re-tokenizes
 * the run's text before it and sends that, which around U+FFFD is not the text the tokens spell.
 */
export function chatEarly(state: ChatWrapperGeneratedContextState, wrapper: ChatWrapper, plain: boolean, stops: readonly string[] = []): string[] | undefined {
  const s = state as Partial<Record<"ignoreStartText" | "prefixTriggers", unknown[]> & Record<"noPrefixTrigger" | "rerender" | "functionCall", unknown>>;
  const segments = Object.entries(wrapper.settings.segments ?? {}).some(([k, v]) => v != null && k !== "reiterateStackAfterFunctionCalls");
  if (!plain || stops.length || segments || s.ignoreStartText?.length || s.prefixTriggers?.length || s.noPrefixTrigger || s.rerender ||
    (s.functionCall as { initiallyEngaged?: boolean } | undefined)?.initiallyEngaged) return undefined;
  return state.stopGenerationTriggers.map(leadingText);
}

/**
 * A trigger's text up to its first special token (matched as a token, after any text before it). Special-token
 * text counts as text here: holding it too only leaves more to node-llama-cpp.
 */
function leadingText(trigger: LlamaText): string {
  let text = "";
  for (const v of trigger.values) {
    if (typeof v === "string") text += v;
    else if (v instanceof SpecialTokensText) text += v.value;
    else break;
  }
  return text;
}
