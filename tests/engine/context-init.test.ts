/**
 * whenContextBuilds (engine/context-init.ts) tells when llama.cpp begins building a model's context on its own thread:
 * serve imports its HTTP app then, so the import overlaps the native work instead of holding node-llama-cpp's JS before
 * it. Checked on the real binding and the tiny model, with the binding's context class watched from outside: when the
 * callback comes, node-llama-cpp has built the estimator's simulated context and then this model's own, and has asked
 * the native side to initialise it (at "creating the context", where the callback used to come, it had done neither).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { getLlama, type Llama, type LlamaModel } from "node-llama-cpp";
import { whenContextBuilds, type NativeContext } from "../../src/engine/context-init";
import { tinyModel } from "../helpers";

type Bindings = { AddonContext: NativeContext };

let llama: Llama;
let model: LlamaModel;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false });
  model = await llama.loadModel({ modelPath: await tinyModel(), gpuLayers: 0 });
}, 60_000);
afterAll(async () => { await model?.dispose(); await llama?.dispose(); });

const bindingsOf = (l: Llama) => (l as unknown as { _bindings: Bindings })._bindings;

/** Records, in order, each native context built ("new") and initialised ("init"), and whether it is on `handle`. */
function watchNative(bindings: Bindings, handle: unknown) {
  const Native = bindings.AddonContext;
  const events: string[] = [];
  const Spy = class extends Native {
    readonly ours: boolean;
    constructor(m: unknown, o: unknown) { super(m, o); this.ours = m === handle; events.push(`new ${this.ours ? "model" : "other"}`); }
    override init(...args: unknown[]) { events.push(`init ${this.ours ? "model" : "other"}`); return super.init(...args); }
  };
  bindings.AddonContext = Spy;
  return { events, Spy, restore: () => { bindings.AddonContext = Native; } };
}

test("the callback comes once, after node-llama-cpp asked llama.cpp to build this model's context, and the class is put back", async () => {
  const bindings = bindingsOf(llama);
  const spy = watchNative(bindings, (model as unknown as { _model: unknown })._model);
  try {
    const seen: string[][] = [];
    const context = await whenContextBuilds(llama, model, () => model.createContext({ contextSize: 256, sequences: 1 }), () => seen.push([...spy.events]));
    try {
      expect(seen).toHaveLength(1);
      const at = seen[0]!;
      // node-llama-cpp sizes the context on a simulated one first (its own handle), then builds this model's
      expect(at).toContain("init other");
      expect(at.at(-1)).toBe("init model");
      expect(at.indexOf("init other")).toBeLessThan(at.indexOf("new model"));
      expect(bindings.AddonContext).toBe(spy.Spy); // the watch is over: the class it found is back
      expect(context.contextSize).toBe(256);
    } finally {
      await context.dispose();
    }
  } finally {
    spy.restore();
  }
}, 60_000);

test("a creation that fails before any native call still calls back once, throws its error and puts the class back", async () => {
  const bindings = bindingsOf(llama);
  const before = bindings.AddonContext;
  let calls = 0;
  await expect(whenContextBuilds(llama, model, async () => { throw new Error("no context"); }, () => calls++)).rejects.toThrow("no context");
  expect(calls).toBe(1);
  expect(bindings.AddonContext).toBe(before);
});

test("without node-llama-cpp's binding internals the callback comes at once, before the creation", async () => {
  const order: string[] = [];
  const out = await whenContextBuilds({} as Llama, {} as LlamaModel, async () => { order.push("create"); return 7; }, () => order.push("told"));
  expect(out).toBe(7);
  expect(order).toEqual(["told", "create"]);
});
