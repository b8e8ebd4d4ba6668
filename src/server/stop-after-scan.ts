/**
 * A request's stop strings looked for in the answer's text as it is sent: after the response scanner, not in what the
 * model wrote. Found by the engine in the model's text (engine/stop-text.ts), a stop that was a redacted secret, or
 * began inside one, cut the answer there: an answer that stopped told the client the hidden text, guess by guess, and
 * a stop just after a secret's start sent that start, too short to be a finding any more (red-team run). So where the
 * scanner reads answers, the server applies the stops (the engine gets none) and ends the generation once the text
 * it releases reaches one; the model writes on while the scanner holds text back, so `completion_tokens` may count a
 * few tokens past the stop, and what it wrote there is scanned too (with action block, a secret there blocks the answer,
 * as it would unstreamed). Not for a forced call (the engine ignores stops there), nor with the scanner off.
 */
import type { Config } from "../config/schema";
import type { TokenLogprob } from "../engine/engine";
import { stopFree } from "../engine/early-text";
import { firstStop } from "../engine/stop-text";

/** Text to send and, with logprobs, the tokens that spell it (null: they could not be lined up with it). */
export interface Piece { text: string; logprobs?: TokenLogprob[] | null }

/** The stop strings the server applies after the scanner, or undefined (the engine applies them, if any). */
export function stopsAfterScan(config: Pick<Config, "responseScan">, stop: readonly string[] | undefined): readonly string[] | undefined {
  return config.responseScan.action !== "off" && stop?.some((s) => s) ? stop : undefined;
}

/** UTF-8 bytes a character takes, from its first byte. */
const charBytes = (lead: number) => (lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2);

/**
 * The entries of `logprobs` (spelling a text, in order) that spell its first `at` characters: a token that runs past
 * `at` is cut there (a stop inside it), as the engine's own stop left it; a character made of byte tokens counts once
 * its last byte is there.
 */
export function logprobsBefore(logprobs: readonly TokenLogprob[], at: number): TokenLogprob[] {
  const out: TokenLogprob[] = [];
  let pos = 0, bytes: number[] = [];
  for (const t of logprobs) {
    if (pos >= at) break;
    if (t.bytes) {
      out.push(t);
      bytes.push(...t.bytes);
      while (bytes.length && bytes.length >= charBytes(bytes[0]!)) {
        const n = charBytes(bytes[0]!);
        pos += Buffer.from(bytes.slice(0, n)).toString("utf8").length;
        bytes = bytes.slice(n);
      }
    } else if (pos + t.token.length <= at) {
      out.push(t);
      pos += t.token.length;
    } else {
      out.push({ ...t, token: t.token.slice(0, at - pos) });
      pos = at;
    }
  }
  return out;
}

/**
 * Pieces of the answer as sent, in order, go on to `send` up to the first stop string; a stretch that may still
 * become one is held. At the stop, the text before it goes out and `onStop` is called (end the generation there).
 */
export function stopPieces(stops: readonly string[], send: (p: Piece) => void, onStop: () => void) {
  let held: Piece[] = [], stopped = false;
  const upTo = (at: number) => {
    let pos = 0;
    for (const p of held) {
      if (pos >= at) break;
      const n = p.text.length;
      if (pos + n <= at) send(p);
      else send({ text: p.text.slice(0, at - pos), logprobs: p.logprobs && logprobsBefore(p.logprobs, at - pos) });
      pos += n;
    }
  };
  return {
    push(p: Piece) {
      if (stopped || (!p.text && !p.logprobs?.length)) return;
      held.push(p);
      const text = held.map((x) => x.text).join("");
      const at = firstStop(text, stops);
      if (at >= 0) {
        upTo(at);
        held = [];
        stopped = true;
        onStop();
        return;
      }
      // Whole pieces that end before where a stop could still begin go out now.
      const free = stopFree(text, stops);
      let end = 0, k = 0;
      while (k < held.length && end + held[k]!.text.length <= free) end += held[k++]!.text.length;
      for (const x of held.splice(0, k)) send(x);
    },
    /** The answer's text is all there: without a stop, what was held goes out. */
    finish() {
      if (!stopped) for (const x of held.splice(0)) send(x);
    },
    get stopped() { return stopped; },
  };
}
