/**
 * Puts concurrent sequences' tokens into llama.cpp's batch in ascending sequence id, and gives a new request the
 * lowest free sequence id, so one decode step is one ubatch (one matrix-matrix product per weight) instead of
 * several.
 *
 * Why: node-llama-cpp creates its context with `kv_unified = false`, so a context of n sequences has n KV-cache
 * streams, and llama.cpp then splits a batch with `split_equal(…, sequential = true)`: a ubatch takes only
 * sequences whose ids follow each other in batch order (id, id + 1, …). node-llama-cpp's batch follows the order
 * the sequences queued their tokens (whichever sampled first), and it reuses freed ids in the order they were freed,
 * so a 4-sequence step was cut into 2-4 ubatches: measured on the 28 M model, 2 threads, 4 streams, a step took
 * 10.9 ms inside llama_decode (1-token steps 3.0 ms) against llama-server's 6.2 ms, whose slots are always batched
 * in id order (perf: our time in ggml_vec_dot_f32 and 2-3-column tinyBLAS blocks, llama-server's in 4-column
 * blocks). llama-server with `-np N` uses the same non-unified cache.
 *
 * Only the order changes: the same tokens, the same amounts per sequence (node-llama-cpp's prioritization strategy
 * runs on the sorted queue; under a full batch a lower id now comes first instead of an earlier arrival), the same
 * logits (node-llama-cpp maps each sequence's logits by the batch index it gets back).
 *
 * Hooks node-llama-cpp internals (3.x: `_queuedDecodes`, `dispatchPendingBatch`, `_popSequenceId`,
 * `_unusedSequenceIds`); when one is missing nothing is changed and the caller is told (decoding works as before).
 */
import type { LlamaContext } from "node-llama-cpp";

type Internal = {
  _queuedDecodes?: { sequenceId: number }[];
  dispatchPendingBatch?: () => void;
  _popSequenceId?: () => number | null;
  _unusedSequenceIds?: number[];
};

/** Installs both orderings on one context; false (and nothing changed) when this node-llama-cpp lacks the internals. */
export function orderBatches(context: LlamaContext): boolean {
  const ctx = context as unknown as Internal;
  const dispatch = ctx.dispatchPendingBatch, pop = ctx._popSequenceId;
  if (!Array.isArray(ctx._queuedDecodes) || !Array.isArray(ctx._unusedSequenceIds) || typeof dispatch !== "function" || typeof pop !== "function") return false;
  // Every dispatch (node-llama-cpp's scheduled one and the one it runs at once when all sequences have queued) goes
  // through this method; the sort is stable, so one sequence's queued decodes keep their order.
  ctx.dispatchPendingBatch = function (this: Internal) {
    this._queuedDecodes!.sort((a, b) => a.sequenceId - b.sequenceId);
    return dispatch.call(this);
  };
  // Freed ids are reused lowest first (they are all below the next never-used id), so concurrent requests hold
  // neighbouring ids.
  ctx._popSequenceId = function (this: Internal) {
    this._unusedSequenceIds!.sort((a, b) => a - b);
    return pop.call(this);
  };
  return true;
}
