/**
 * Keeps concurrent sequences in one llama_decode step, without holding the context lock between steps.
 *
 * node-llama-cpp decodes queued tokens in a loop under the context lock: after a step it samples every sequence,
 * resolves their promises and, if anything is queued again, starts the next step at once. A sequence's way back to
 * the queue (LlamaCompletion/LlamaChat per-token work, our stream) is a longer promise chain than the lock's, so the
 * last-sampled sequence regularly missed the next step: with 4 streams, steps held 3 tokens and a sequence lagged
 * one step behind (65 steps for 48 tokens per stream, measured). Here a sequence that comes back while that loop
 * still holds the lock waits for the lock's release before it queues: the loop then finds the queue empty and lets
 * go of the lock (so a request waiting for it, e.g. to set up its sequence, gets in between steps), every sampled
 * sequence queues at that moment, and node-llama-cpp's own next-cycle dispatch decodes them all in one step.
 *
 * This hooks a node-llama-cpp internal (`LlamaContext._decodeTokens`, 3.x) and its lock (lifecycle-utils, the
 * same module instance node-llama-cpp uses: scope [context, "context"]); when the hook is not there, nothing is
 * changed and decoding works as before (only less batched).
 */
import { isLockActive, waitForLockRelease } from "lifecycle-utils";
import type { LlamaContext } from "node-llama-cpp";
import { orderBatches } from "./batch-order";

type Internal = { _decodeTokens?: (args: unknown, mapper: unknown) => Promise<unknown> };

/**
 * Installs the step synchronisation on one context, and the sequence order that keeps a step one ubatch
 * (batch-order.ts); false when this node-llama-cpp lacks either's internals.
 */
export function syncBatches(context: LlamaContext): boolean {
  const ctx = context as unknown as Internal;
  const decode = ctx._decodeTokens;
  if (typeof decode !== "function" || decode.length !== 2) return false;
  if (!orderBatches(context)) return false;
  ctx._decodeTokens = async function (this: unknown, args: unknown, mapper: unknown) {
    const lock = [context, "context"] as const;
    if (isLockActive(lock)) await waitForLockRelease(lock);
    return decode.call(this, args, mapper);
  };
  return true;
}
