/**
 * A per-sequence hook on node-llama-cpp's internals (sampler-memo.ts, fixed-answers.ts): every sequence a context
 * hands out from now on is passed to `hook` before the caller gets it. The context's own `getSequence` is wrapped as
 * an own property of that context; false, and nothing changed, where it has none.
 */
import type { LlamaContext, LlamaContextSequence } from "node-llama-cpp";

export function onEverySequence(context: LlamaContext, hook: (sequence: LlamaContextSequence) => unknown): boolean {
  const getSequence = context.getSequence;
  if (typeof getSequence !== "function") return false;
  Object.defineProperty(context, "getSequence", {
    configurable: true, writable: true,
    value: function (this: LlamaContext, ...args: Parameters<LlamaContext["getSequence"]>) {
      const sequence = getSequence.apply(this, args);
      hook(sequence);
      return sequence;
    },
  });
  return true;
}
