/**
 * Tells when node-llama-cpp hands a model's context to its native thread (llama_init_from_model: the KV cache and
 * compute buffers allocated and cleared, 18-23 ms of a 28 M model's start here, longer for larger ones), the stretch
 * of a start where the JS thread has nothing to do. `serve` imports the HTTP app's modules then (server/create-server.ts
 * loadApp). "creating the context" came too early for that: node-llama-cpp first sizes the context in JS and measures
 * it on a simulated one (~3-5 ms), and work started at that status delayed the native call by as much.
 *
 * node-llama-cpp (3.x) makes the context as `new llama._bindings.AddonContext(model._model, …)` and then calls its
 * `init()`, which queues the native work and returns a promise. For the duration of one createContext the class is
 * replaced by a subclass that calls back after that `init()` when the object is built on this model's handle (the
 * estimator's simulated contexts are built on a handle of their own). Where those internals are not there, the callback
 * comes at once, as before.
 */
import type { Llama, LlamaModel } from "node-llama-cpp";

export type NativeContext = new (model: unknown, options: unknown) => { init(...args: unknown[]): Promise<unknown> };
type Internal = { _bindings?: { AddonContext?: NativeContext } };

/** Runs `create` (one createContext of `model`) and calls `started` once, when the native side begins building it. */
export async function whenContextBuilds<T>(llama: Llama, model: LlamaModel, create: () => Promise<T>, started: () => void): Promise<T> {
  const bindings = (llama as unknown as Internal)._bindings;
  const Native = bindings?.AddonContext;
  const handle = (model as unknown as { _model?: unknown })._model;
  let told = false;
  const tell = () => { if (!told) { told = true; started(); } };
  if (!bindings || typeof Native !== "function" || typeof Native.prototype?.init !== "function" || handle === undefined) {
    tell();
    return create();
  }
  const Watched = class extends Native {
    readonly #ours: boolean;
    constructor(m: unknown, options: unknown) {
      super(m, options);
      this.#ours = m === handle;
    }
    override init(...args: unknown[]) {
      const building = super.init(...args);
      if (this.#ours) tell();
      return building;
    }
  };
  bindings.AddonContext = Watched;
  try {
    return await create();
  } finally {
    if (bindings.AddonContext === Watched) bindings.AddonContext = Native;
    tell(); // node-llama-cpp took another way (or failed before building): the caller is not left waiting
  }
}
