/**
 * Per-token sampler set-up done once per generation instead of once per token.
 *
 * Why: for every sampled token node-llama-cpp rebuilds the sampler's settings from the same inputs
 * (`LlamaContextSequence._resolveSamplerConfig`: a new object, the token bias copied into new typed arrays,
 * `removeNullFields`) and hands them to the native sampler (`AddonSampler.applyConfig`), which reads some twenty
 * fields back through N-API and, finding each one equal to what it already holds, changes nothing. With 4 streams
 * that ran 4 times between two decode steps, on the JS thread every stream waits on (issue 11: the JS between
 * steps). Here, while a sequence's inputs are the same values as at its last token, it gets the same settings
 * object back, and a native sampler given the very object it last applied skips the call.
 *
 * Same samples: the native sampler only ever compares each setting with what it holds (a sampler chain is rebuilt
 * only when one differs), so applying identical settings again is a no-op. Settings are reused only when no input
 * can change between tokens without changing identity: no repeat penalty (its token list is a function of the
 * text so far), no DRY penalty, no XTC, a fixed seed (without one, node-llama-cpp seeds from the current second);
 * the token bias and grammar state are compared by identity (a TokenBias is not changed once a generation has it:
 * llama-options.ts makes one per request).
 *
 * Hooks node-llama-cpp internals (3.x: `LlamaContextSequence._resolveSamplerConfig`, `LlamaContext._ctx` and its
 * `sampleToken(index, sampler, …)`, the native sampler's `applyConfig`), as own properties of those objects; where
 * one is missing nothing is changed (sampling works as before).
 */
import type { LlamaContext, LlamaContextSequence } from "node-llama-cpp";
import { onEverySequence } from "./sequence-hook";

type Inputs = Record<string, unknown>;
type Resolve = (inputs: Inputs) => object;
type NativeSampler = { applyConfig: (config: object) => unknown };
type NativeContext = { sampleToken: (index: number, sampler: NativeSampler, ...rest: unknown[]) => unknown };

/** The inputs `_resolveSamplerConfig` reads (3.x). */
const KEYS = ["temperature", "minP", "topK", "topP", "seed", "xtc", "grammarEvaluationState", "repeatPenalty", "dryRepeatPenalty", "tokenBias"] as const;

/**
 * True when settings made from these inputs stay right for as long as the inputs are the same values (a token bias
 * or grammar state given as a function is asked first: see `resolved`).
 */
export function reusableInputs(inputs: Inputs): boolean {
  if (typeof inputs.seed !== "number" || inputs.repeatPenalty != null || inputs.dryRepeatPenalty != null || inputs.xtc != null) return false;
  // Runs for every sampled token: a loop over a Set, no array made (Object.keys().every(includes) was a few % of the JS between steps).
  for (const k in inputs) if (!KNOWN.has(k)) return false;
  return true;
}
const KNOWN: ReadonlySet<string> = new Set(KEYS);

/**
 * The inputs with a token bias or grammar state given as a function replaced by what it returns now (node-llama-cpp
 * calls each once per token inside `_resolveSamplerConfig`; LlamaChat passes its grammar state that way, a getter of
 * the state in use). Called once here instead, so the settings are built from the same values.
 */
function resolved(inputs: Inputs): Inputs {
  const grammar = typeof inputs.grammarEvaluationState === "function", bias = typeof inputs.tokenBias === "function";
  if (!grammar && !bias) return inputs; // node-llama-cpp makes a new inputs object per token: nothing to copy
  const out = { ...inputs };
  if (grammar) out.grammarEvaluationState = (out.grammarEvaluationState as () => unknown)();
  if (bias) out.tokenBias = (out.tokenBias as () => unknown)();
  return out;
}

function sameInputs(a: Inputs, b: Inputs): boolean {
  for (let i = 0; i < KEYS.length; i++) if (a[KEYS[i]!] !== b[KEYS[i]!]) return false;
  return true;
}

/** Makes one sequence reuse its last sampler settings while its inputs are unchanged; false if the hook is missing. */
export function memoSamplerConfig(sequence: LlamaContextSequence): boolean {
  const seq = sequence as unknown as { _resolveSamplerConfig?: Resolve };
  const resolve = seq._resolveSamplerConfig;
  if (typeof resolve !== "function" || resolve.length !== 1) return false;
  let last: { inputs: Inputs; config: object } | undefined;
  Object.defineProperty(seq, "_resolveSamplerConfig", {
    configurable: true, writable: true,
    value: function (this: unknown, inputs: Inputs) {
      if (!reusableInputs(inputs)) { last = undefined; return resolve.call(this, inputs); }
      const now = resolved(inputs);
      if (last && sameInputs(last.inputs, now)) return last.config;
      const config = resolve.call(this, now);
      last = { inputs: now, config };
      return config;
    },
  });
  return true;
}

/**
 * Makes every native sampler used on this context skip `applyConfig` when given the settings object it applied
 * last (the object memoSamplerConfig hands back); false if the hook is missing. A sampler is seen at its first
 * `sampleToken`, after its first `applyConfig`, which therefore always runs.
 */
export function skipRepeatedApply(context: LlamaContext): boolean {
  const native = (context as unknown as { _ctx?: NativeContext })._ctx;
  const sample = native?.sampleToken;
  if (!native || typeof sample !== "function" || !Object.isExtensible(native)) return false;
  const seen = new WeakSet<object>();
  Object.defineProperty(native, "sampleToken", {
    configurable: true, writable: true,
    value: function (this: NativeContext, index: number, sampler: NativeSampler) {
      if (sampler && typeof sampler === "object" && !seen.has(sampler)) {
        seen.add(sampler);
        const apply = sampler.applyConfig;
        if (typeof apply === "function" && Object.isExtensible(sampler)) {
          let applied: object | undefined;
          Object.defineProperty(sampler, "applyConfig", {
            configurable: true, writable: true,
            value: function (this: NativeSampler, config: object) {
              if (config === applied) return undefined;
              applied = config;
              return apply.call(this, config);
            },
          });
        }
      }
      // arguments, not a rest parameter: no array made and spread again for every sampled token
      return sample.apply(this, arguments as unknown as [number, NativeSampler, ...unknown[]]);
    },
  });
  return true;
}

/**
 * Both on one context: every sequence it hands out reuses its sampler settings, every native sampler skips a
 * repeated apply. False (and sampling as before) when this node-llama-cpp lacks the internals.
 */
export function memoSampling(context: LlamaContext): boolean {
  if (typeof context.getSequence !== "function" || !skipRepeatedApply(context)) return false;
  return onEverySequence(context, memoSamplerConfig);
}
