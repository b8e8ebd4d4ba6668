/**
 * A generation loop straight on node-llama-cpp's native addon, for bench-steps --floor: N greedy streams decoded in
 * shared steps on a context of their own (initBatch, addToBatch per stream, decodeBatch, sampleToken per stream, each
 * token detokenized), with no sequence objects, locks, batch queue or stop checks. What the native calls alone cost
 * the JS thread per token: the floor under node-llama-cpp's LlamaContextSequence machinery (issue 11).
 *
 * Uses node-llama-cpp internals (3.x: `LlamaContext._ctx`, `LlamaContextSequence._sequenceId` and
 * `_resolveSamplerConfig`, the bindings' `AddonSampler`); a measurement only, nothing serve runs.
 */
import type { LlamaModel, Token } from "node-llama-cpp";
import { beginningToken, tokenBias } from "../src/engine/llama-options";

type Addon = {
  initBatch(size: number): void;
  addToBatch(sequenceId: number, firstTokenIndex: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array;
  decodeBatch(): Promise<void>;
  sampleToken(batchLogitIndex: number, sampler: unknown): Promise<Token>;
  disposeSequence(sequenceId: number): void;
};
type NativeSampler = { applyConfig(config: object): void; dispose(): void };

export interface FloorOptions { streams: number; threads: number; prompt: string; maxTokens: number; bias: Record<string, number> }
export interface FloorBurst { tokens: number; steps: number; ms: number; gaps: number[] }

export async function addonFloor(model: LlamaModel, o: FloorOptions) {
  const context = await model.createContext({ contextSize: 2048, sequences: o.streams, threads: o.threads });
  const addon = (context as unknown as { _ctx: Addon })._ctx;
  const sequences = Array.from({ length: o.streams }, () => context.getSequence());
  const ids = sequences.map((s) => (s as unknown as { _sequenceId: number })._sequenceId);
  // The settings node-llama-cpp would hand the native sampler for this request (greedy, the bias, a fixed seed).
  const config = (sequences[0] as unknown as { _resolveSamplerConfig(i: object): object })._resolveSamplerConfig({
    temperature: 0, seed: 1, tokenBias: tokenBias(new Map(Object.entries(o.bias).map(([k, v]) => [Number(k), v])), model) });
  const Sampler = (model as unknown as { _llama: { _bindings: { AddonSampler: new (m: unknown) => NativeSampler } } })._llama._bindings.AddonSampler;
  const samplers = ids.map(() => { const s = new Sampler((model as unknown as { _model: unknown })._model); s.applyConfig(config); return s; });
  const bos = beginningToken(model);
  const prompt = Uint32Array.from([...(bos === null ? [] : [bos]), ...model.tokenize(o.prompt)]);

  async function burst(): Promise<FloorBurst> {
    for (const id of ids) addon.disposeSequence(id); // the last burst's cells
    const t0 = performance.now();
    addon.initBatch(prompt.length * ids.length);
    let at = ids.map((id) => addon.addToBatch(id, 0, prompt, Uint32Array.of(prompt.length - 1))[0]!);
    await addon.decodeBatch();
    let last = performance.now();
    const gaps: number[] = [];
    let next = await Promise.all(ids.map((_, i) => addon.sampleToken(at[i]!, samplers[i])));
    let text = "", steps = 1;
    for (let pos = prompt.length; ; pos++) {
      for (const t of next) text += model.detokenize([t]);
      if (pos - prompt.length + 1 >= o.maxTokens) break;
      addon.initBatch(ids.length);
      at = ids.map((id, i) => addon.addToBatch(id, pos, Uint32Array.of(next[i]!), Uint32Array.of(0))[0]!);
      gaps.push(performance.now() - last);
      await addon.decodeBatch();
      last = performance.now(); steps++;
      next = await Promise.all(ids.map((_, i) => addon.sampleToken(at[i]!, samplers[i])));
    }
    if (!text) throw new Error("addon floor: no text generated");
    return { tokens: o.maxTokens * ids.length, steps, ms: performance.now() - t0, gaps };
  }

  async function dispose() {
    for (const s of samplers) s.dispose();
    for (const s of sequences) s.dispose();
    await context.dispose();
  }
  return { burst, dispose };
}
