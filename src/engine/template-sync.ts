/**
 * Synchronous, bounded rendering for the renders node-llama-cpp makes itself. LlamaChat calls the chat
 * wrapper's `generateContextState` synchronously, on the event loop, while it generates: at the start, on a
 * context shift, in function-calling rounds (with the model's own partial answer in the history), and the
 * engine once to count the prompt's tokens. The template-bound pool only checks the request's history before
 * that, so a template that is fast on it and slow on one of those histories would still stall the server.
 * Here every such render is made by a dedicated worker while the event loop waits on a shared buffer
 * (Atomics.wait) for at most limits.chatTemplateMs: past it the worker is terminated (and respawned) and the
 * render throws 400 chat_template_bound, which ends that generation. The event loop is held for as long as the
 * render takes, as it was when node-llama-cpp rendered in place, but never longer than the bound.
 */
import type { ChatWrapperGeneratedContextState, ChatWrapperGenerateContextStateOptions } from "node-llama-cpp";
import { InvalidRequestError } from "../errors";
import { HEADER_BYTES, SLOT, STATUS, stateFromJson } from "./template-state";
import type { TemplateInit, TemplateJob } from "./template-render";
import type { ToolResultForm } from "./tool-results";

/** Time a fresh worker may take to start (it imports node-llama-cpp and builds the wrapper); waited for only when it is needed. */
const READY_MS = 30_000;

export interface SyncLimits { ms: number; chars: number }

export class SyncRenderer {
  private current?: { w: Worker; slots: Int32Array; bytes: Uint8Array };
  private lastId = 0;

  constructor(private readonly init: TemplateInit, private readonly limits: SyncLimits, private readonly url: URL,
    private readonly refuse: (why: string) => Error, private readonly toolResults: () => ToolResultForm | undefined = () => undefined) {
    this.current = this.spawn(); // at load, so the first render does not wait for it
  }

  /** Renders as the wrapper's own generateContextState would, in the worker, within the bounds (throws 400 otherwise). */
  render(options: ChatWrapperGenerateContextStateOptions): ChatWrapperGeneratedContextState {
    const c = this.current ??= this.spawn();
    if (Atomics.load(c.slots, SLOT.READY) !== 1 && Atomics.wait(c.slots, SLOT.READY, 0, READY_MS) === "timed-out") {
      this.kill(c);
      throw this.refuse(`renderer did not start within ${READY_MS / 1000} s`);
    }
    const id = ++this.lastId;
    const job: TemplateJob = { id, chatHistory: [...options.chatHistory], availableFunctions: options.availableFunctions,
      documentFunctionParams: options.documentFunctionParams, maxChars: this.limits.chars, toolResults: this.toolResults() };
    c.w.postMessage(job);
    const deadline = performance.now() + this.limits.ms;
    // Atomics.wait returns "not-equal" when DONE already moved on; loop until it holds this job's id or time is up.
    for (let seen = Atomics.load(c.slots, SLOT.DONE); seen !== id; seen = Atomics.load(c.slots, SLOT.DONE)) {
      const left = deadline - performance.now();
      if (left <= 0) {
        this.kill(c); // stuck in the template: only terminating it stops the loop and frees what it built
        throw this.refuse(`did not finish rendering within ${this.limits.ms} ms (limits.chatTemplateMs) during generation`);
      }
      Atomics.wait(c.slots, SLOT.DONE, seen, left);
    }
    const status = Atomics.load(c.slots, SLOT.STATUS);
    const text = new TextDecoder().decode(c.bytes.slice(0, Atomics.load(c.slots, SLOT.LENGTH)));
    if (status === STATUS.OK) return stateFromJson(text);
    if (status === STATUS.TOO_LONG) {
      this.kill(c);
      throw this.refuse(`produced more than ${this.limits.chars} characters (limits.chatTemplateChars) during generation: ${text}`);
    }
    throw new InvalidRequestError(`The model's chat template cannot render these messages: ${text}`, "messages", "chat_template_error");
  }

  dispose() {
    this.current?.w.terminate();
    this.current = undefined;
  }

  private spawn() {
    // Room for the largest state within the bound: every character as 4 UTF-8 bytes, JSON escaping, the triggers.
    const sab = new SharedArrayBuffer(HEADER_BYTES + this.limits.chars * 6 + 65_536);
    const w = new Worker(this.url);
    w.unref();
    w.postMessage({ ...this.init, sync: sab } satisfies TemplateInit);
    return { w, slots: new Int32Array(sab, 0, HEADER_BYTES / 4), bytes: new Uint8Array(sab, HEADER_BYTES) };
  }

  /** Terminates a stuck worker and starts the next one at once, so that it is ready by the next render. */
  private kill(c: { w: Worker }) {
    c.w.terminate();
    if (this.current === c) this.current = this.spawn();
  }
}
