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
 * A sequence taken over by another scope is cleared first. Reused state is exactly what the sequence's own prompt
 * evaluation left (see UBATCH); an evaluation that failed leaves nothing behind (its sequence is disposed and made
 * again).
 */
import type { LlamaContext, LlamaContextSequence, Token } from "node-llama-cpp";

/** A free sequence's state is one whole prompt's evaluation (see UBATCH): its nextTokenIndex is that prompt's length. */
interface Kept { sequence: LlamaContextSequence; scope: unknown }

/**
 * Tokens of shared start a sequence must add over the lowest-id candidate to be taken instead: concurrent sequences
 * decode in one ubatch only with neighbouring ids (batch-order.ts), and a step cut in two costs every later token of
 * every stream, while evaluating 32 prompt tokens more costs once (about one decode step of a small batch).
 */
const NEAR = 32;

/**
 * Why a reused start answers exactly as a whole evaluation does (on the CPU), and what that takes. llama.cpp's CPU
 * kernels sum in an order that depends on the batch: matrix products of two or more tokens go through llamafile's
 * tinyBLAS (one order whatever the batch), a single token through ggml's vec_dot (another order); flash attention
 * takes its tiled kernel for an ubatch of FA_TILE tokens or more and a row-by-row one below (another order again);
 * node-llama-cpp evaluates a prompt in ubatches of UBATCH tokens. A token's state is therefore the same bits only
 * where it went through the same kernels. So the pool keeps only prompt tokens (generated ones were evaluated one at
 * a time), and reuses a start only as far as every reused token and every token evaluated after it goes through the
 * kernels the whole prompt's evaluation would use (`reusable`). Re-evaluating just the last token changed logprobs
 * in the 4th decimal and a seeded temperature-1 answer; so did re-evaluating up to 63 tokens of a 128-token prompt.
 * Exact for one prompt evaluated at a time; prompts of concurrent requests share ubatches and can differ, as they
 * do without reuse.
 */
const UBATCH = 512, FA_TILE = 64;

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
   * own, never reused), preferring the lowest id among those sharing within NEAR tokens of it; with nothing shared, a
   * new sequence while the context has one left, else (cleared) a free one of this scope, else the one given back
   * longest ago. The caller holds one of the context's slots (the scheduler).
   */
  async take(scope: unknown, tokens: readonly Token[]): Promise<LentSequence> {
    const found = this.free.map((kept) => ({ kept, n: this.reuse && scope !== undefined && kept.scope === scope ? sharedStart(kept.sequence, tokens) : 0 }));
    const most = Math.max(0, ...found.map((f) => f.n));
    // A few tokens more of a shared start are not worth a sequence id away from the others: within NEAR of the
    // longest, the lowest id (every prompt of a key shares the template's opening; ties are the rule). Only among
    // sequences that share something: with the longest start under NEAR, another key's sequence (sharing 0) had the
    // lowest id, was cleared and taken, and this key's own start went unused while the other key lost its cache.
    let best: Kept | undefined, shared = 0;
    for (const { kept, n } of found) {
      if (n > 0 && n >= most - NEAR && (!best || idOf(kept.sequence) < idOf(best.sequence))) { best = kept; shared = n; }
    }
    // Nothing shared and no new sequence left: clear this key's own free sequence if it has one, else the one given
    // back longest ago (`free` is in give-back order), never another key's most recent prompt first.
    if (!best && this.context.sequencesLeft === 0) best = this.free.find((k) => scope !== undefined && k.scope === scope) ?? this.free[0];
    let kept: Kept;
    const reused = best && shared > 0 ? reusable(best.sequence.nextTokenIndex, tokens.length, shared) : 0;
    if (best) {
      this.free.splice(this.free.indexOf(best), 1);
      kept = best;
      try {
        await dropFrom(kept.sequence, reused);
      } catch (e) {
        await kept.sequence.dispose();
        throw e;
      }
    } else {
      kept = { sequence: this.context.getSequence(), scope };
    }
    kept.scope = scope;
    let given = false;
    return {
      sequence: kept.sequence, reused,
      giveBack: async (failed) => {
        if (given) return;
        given = true;
        // Per-generation wrappers (token-tally.ts, logprobs.ts) are own properties: the next generation starts plain.
        delete (kept.sequence as { evaluate?: unknown }).evaluate;
        if (!failed && this.reuse) {
          try {
            // Only the prompt is kept: generated tokens were evaluated one step at a time (see UBATCH).
            await dropFrom(kept.sequence, tokens.length);
            this.free.push(kept);
            return;
          } catch { /* disposed below */ }
        }
        await kept.sequence.dispose();
      },
    };
  }
}

/** node-llama-cpp's sequence id (internal in 3.x; 0 where missing: the pool's order then decides). */
const idOf = (s: LlamaContextSequence) => (s as unknown as { _sequenceId?: number })._sequenceId ?? 0;

/** Where the last ubatch of n tokens evaluated from `from` starts. */
const lastUbatch = (n: number, from = 0) => from + Math.floor((n - from - 1) / UBATCH) * UBATCH;

/**
 * Whether token i of an n-token prompt, evaluated from token `from` on (in UBATCH pieces; 0: the prompt whole), goes
 * through the tiled kernels (in an ubatch of FA_TILE or more).
 */
function tiled(n: number, i: number, from = 0): boolean {
  const last = lastUbatch(n, from);
  return i < last || n - last >= FA_TILE;
}

/** Whether tokens [k, n) evaluated on their own (in UBATCH pieces from k) each go through the kernels the whole prompt's evaluation uses. */
function tailMatches(n: number, k: number): boolean {
  if (n - k < 2) return false; // a single token goes through vec_dot, never so in a prompt of two or more
  // Both are constant between the two last-ubatch starts: compare at the ends of each stretch.
  const whole = lastUbatch(n), last = lastUbatch(n, k);
  return [k, whole - 1, whole, last - 1, last, n - 1].every((i) => i < k || i >= n || tiled(n, i, k) === tiled(n, i));
}

/**
 * How many of the `shared` start tokens an n-token prompt may reuse from a state left by a whole `held`-token
 * prompt: as many as went through the kernels a whole evaluation of this prompt would use, with the rest
 * evaluated after them through those kernels too (see UBATCH); at most n - 2.
 */
export function reusable(held: number, n: number, shared: number): number {
  let k = Math.min(shared, held, n - 2);
  // The first token at which the two prompts' whole evaluations used different kernels bounds the reuse.
  for (const i of [0, lastUbatch(held), lastUbatch(n)].sort((a, b) => a - b)) {
    if (i >= 0 && i < k && tiled(held, i) !== tiled(n, i)) k = i;
  }
  while (k > 0 && !tailMatches(n, k)) k--;
  return Math.max(0, k);
}

/** Erases the sequence's evaluated state from token `from` on (nothing when it holds no more). */
async function dropFrom(sequence: LlamaContextSequence, from: number) {
  const end = sequence.nextTokenIndex;
  if (end > from) await sequence.eraseContextTokenRanges([{ start: from, end }]);
}

/** How many tokens from the start the sequence's evaluated state has in common with `tokens`. */
function sharedStart(sequence: LlamaContextSequence, tokens: readonly Token[]): number {
  const held = sequence.contextTokens;
  const n = Math.min(held.length, tokens.length, sequence.nextTokenIndex);
  let i = 0;
  while (i < n && held[i] === tokens[i]) i++;
  return i;
}
