/**
 * A model's context sequences, kept between generations so that a prompt beginning as an earlier one did
 * evaluates only what follows the shared start (llama-server's cache_prompt; node-llama-cpp's LlamaChat and
 * LlamaCompletion erase a kept sequence's state from the first token that differs and evaluate from there).
 *
 * Why: every generation had taken a fresh sequence and disposed of it after, so each prompt was evaluated from its
 * first token: a chat's second turn evaluated the whole first turn again, and a template's fixed opening every time.
 *
 * Reuse stays inside one scope (the caller's API key): a prompt's state is never offered to another scope, so how
 * fast a prompt is answered tells nothing about what other keys sent (a cached start answers measurably sooner).
 * A sequence taken over by another scope is cleared first. Reused state is exactly what the sequence's own
 * evaluation left; an evaluation that failed leaves nothing behind (its sequence is disposed and made again).
 */
import type { LlamaContext, LlamaContextSequence, Token } from "node-llama-cpp";

interface Kept { sequence: LlamaContextSequence; scope: unknown }

/**
 * Tokens of shared start a sequence must add over the lowest-id candidate to be taken instead: concurrent sequences
 * decode in one ubatch only with neighbouring ids (batch-order.ts), and a step cut in two costs every later token of
 * every stream, while evaluating 32 prompt tokens more costs once (about one decode step of a small batch).
 */
const NEAR = 32;

/** A sequence lent to one generation: `reused` prompt tokens were already evaluated in it. */
export interface LentSequence {
  sequence: LlamaContextSequence;
  reused: number;
  /** Gives the sequence back; `failed`: its state is not trusted (disposed, a new one is made when needed). */
  giveBack(failed: boolean): Promise<void>;
}

export class SequencePool {
  private readonly free: Kept[] = [];

  /** `reuse` (config promptCache): false disposes of each sequence after its generation, so every prompt is evaluated whole. */
  constructor(private readonly context: LlamaContext, private readonly reuse: boolean) {}

  /**
   * The free sequence whose state shares the longest start with `tokens` within `scope` (undefined: a scope of its
   * own, never reused), preferring the lowest id among those within NEAR tokens of it; with nothing shared, a new
   * sequence while the context has one left, else the free one with the lowest id (cleared). The caller holds one
   * of the context's slots (the scheduler).
   */
  async take(scope: unknown, tokens: readonly Token[]): Promise<LentSequence> {
    const found = this.free.map((kept) => ({ kept, n: this.reuse && scope !== undefined && kept.scope === scope ? sharedStart(kept.sequence, tokens) : 0 }));
    const most = Math.max(0, ...found.map((f) => f.n));
    // A few tokens more of a shared start are not worth a sequence id away from the others: within NEAR of the
    // longest, the lowest id (every prompt of a key shares the template's opening; ties are the rule).
    let best: Kept | undefined, shared = 0;
    for (const { kept, n } of found) {
      if (n >= most - NEAR && (!best || idOf(kept.sequence) < idOf(best.sequence))) { best = kept; shared = n; }
    }
    let kept: Kept;
    if (best && (shared > 0 || this.context.sequencesLeft === 0)) {
      this.free.splice(this.free.indexOf(best), 1);
      kept = best;
      if (shared === 0 && kept.sequence.nextTokenIndex > 0) await kept.sequence.clearHistory();
    } else {
      kept = { sequence: this.context.getSequence(), scope };
    }
    kept.scope = scope;
    // At least the last prompt token is evaluated again: its logits start the generation.
    const reused = Math.min(shared, Math.max(0, tokens.length - 1));
    let given = false;
    return {
      sequence: kept.sequence, reused,
      giveBack: async (failed) => {
        if (given) return;
        given = true;
        // Per-generation wrappers (token-tally.ts, logprobs.ts) are own properties: the next generation starts plain.
        delete (kept.sequence as { evaluate?: unknown }).evaluate;
        if (failed || !this.reuse) {
          await kept.sequence.dispose();
          return;
        }
        this.free.push(kept);
      },
    };
  }
}

/** node-llama-cpp's sequence id (internal in 3.x; 0 where missing: the pool's order then decides). */
const idOf = (s: LlamaContextSequence) => (s as unknown as { _sequenceId?: number })._sequenceId ?? 0;

/** How many tokens from the start the sequence's evaluated state has in common with `tokens`. */
function sharedStart(sequence: LlamaContextSequence, tokens: readonly Token[]): number {
  const held = sequence.contextTokens;
  const n = Math.min(held.length, tokens.length, sequence.nextTokenIndex);
  let i = 0;
  while (i < n && held[i] === tokens[i]) i++;
  return i;
}
