/**
 * Keeps concurrent sequences in one llama_decode step.
 *
 * node-llama-cpp decodes queued tokens in a loop under the context lock: after a step it samples every sequence,
 * resolves their promises and, if anything is queued again, starts the next step at once. A sequence's way back to
 * the queue (LlamaCompletion/LlamaChat per-token work, our stream) is a longer promise chain than the lock's, so the
 * last-sampled sequence regularly missed the next step: with 4 streams, steps held 3 tokens and a sequence lagged
 * one step behind (57 decodes for 43 tokens per stream, measured). One macrotask turn after each step lets every
 * sampled sequence queue its next token first; the turn costs microseconds against a decode step of milliseconds.
 *
 * This hooks node-llama-cpp internals (`LlamaContext._decodeTokens` and its `afterBatchAction`, 3.x); when they
 * are not there, nothing is changed and decoding works as before (only less batched).
 */
import type { LlamaContext } from "node-llama-cpp";

type DecodeArgs = { afterBatchAction?: (sequenceStateLength: number) => unknown } & Record<string, unknown>;
type Internal = { _decodeTokens?: (args: DecodeArgs, mapper: unknown) => Promise<unknown> };

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Installs the step synchronisation on one context; false when this node-llama-cpp has no such internals. */
export function syncBatches(context: LlamaContext): boolean {
  const ctx = context as unknown as Internal;
  const decode = ctx._decodeTokens;
  if (typeof decode !== "function" || decode.length !== 2) return false;
  ctx._decodeTokens = function (this: unknown, args: DecodeArgs, mapper: unknown) {
    const after = args.afterBatchAction;
    return decode.call(this, {
      ...args,
      afterBatchAction: async (sequenceStateLength: number) => {
        await after?.(sequenceStateLength);
        await turn();
      },
    }, mapper);
  };
  return true;
}
