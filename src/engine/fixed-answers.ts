/**
 * Answers node-llama-cpp asks llama.cpp again at every generated token, though they never change while a model is
 * loaded, remembered after the first time:
 *  - whether a token ends generation (`LlamaModel.isEogToken`: a native call unless the token is the EOS or EOT
 *    token; its completion and chat loops ask it one to three times per token);
 *  - whether a sequence must take state checkpoints (`LlamaContextSequence.needsCheckpoints`: two native calls with
 *    the architecture's name passed as a string, plus metadata lookups, asked after every decode step). It depends on
 *    the model's architecture and the context's SWA cache setting, both fixed once the context exists.
 *
 * Why: between two decode steps the JS thread runs with caches the step has emptied (a 28 M F32 model streams
 * 112 MB through them per token), where each such native call took 8.4-9.1 µs against 1.1-1.6 µs warm (a call after
 * reading 112 MB, this host): per token that is JS the next decode step waits for (issue 11, the time between steps).
 *
 * Hooks node-llama-cpp internals (3.x: the model's own bound `isEogToken`, the prototype getter `needsCheckpoints`
 * of the sequences `getSequence` hands out) as own properties of those objects; where one is missing nothing changes.
 */
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { onEverySequence } from "./sequence-hook";

/** Remembers both answers for `model` and every sequence `context` hands out from now on; false where a hook is missing. */
export function rememberFixedAnswers(model: LlamaModel, context: LlamaContext): boolean {
  const eog = rememberEog(model), checkpoints = onEverySequence(context, rememberOn);
  return eog && checkpoints;
}

function rememberEog(model: LlamaModel): boolean {
  const ask = (model as { isEogToken?: unknown }).isEogToken;
  if (typeof ask !== "function" || !Object.isExtensible(model)) return false;
  const known = new Map<number, boolean>(); // at most one entry per vocabulary token
  Object.defineProperty(model, "isEogToken", {
    configurable: true, writable: true,
    value: (token: Token | null | undefined) => {
      if (typeof token !== "number") return (ask as (t: unknown) => boolean)(token);
      let eog = known.get(token);
      if (eog === undefined) known.set(token, eog = (ask as (t: Token) => boolean)(token));
      return eog;
    },
  });
  return true;
}

/** The sequence's needsCheckpoints, read once from its class's getter, then answered from memory. */
function rememberOn(sequence: LlamaContextSequence): void {
  let getter: (() => boolean) | undefined;
  for (let p: object | null = Object.getPrototypeOf(sequence); p && !getter; p = Object.getPrototypeOf(p)) {
    getter = Object.getOwnPropertyDescriptor(p, "needsCheckpoints")?.get as (() => boolean) | undefined;
  }
  if (!getter || !Object.isExtensible(sequence)) return;
  let need: boolean | undefined;
  Object.defineProperty(sequence, "needsCheckpoints", { configurable: true, get: () => (need ??= getter!.call(sequence)) });
}
