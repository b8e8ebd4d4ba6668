/**
 * Worker side of the chat-template bound (see template-bound.ts), loaded by the worker's entry (template-worker.ts).
 * It builds the same
 * JinjaTemplateChatWrapper the engine resolved (same template; the model's tokenizer replayed
 * from the answers it gave during resolution) and renders each request's history with it, so a
 * template whose cost grows with the request loops here, where the parent can terminate it,
 * and never on the server's event loop.
 *
 * Two modes: a job posted by the pool (template-bound.ts) is answered by message with the rendered length;
 * a worker started with a SharedArrayBuffer (template-sync.ts) writes the whole rendered state into it and
 * wakes the engine, which waits for it synchronously (node-llama-cpp renders synchronously mid-generation).
 */
import { JinjaTemplateChatWrapper, type ChatHistoryItem, type ChatModelFunctions } from "node-llama-cpp";
import { HEADER_BYTES, SLOT, STATUS, stateToJson } from "./template-state";
import { toolResultForm, withToolResults, type ToolResultForm } from "./tool-results";

/** First message: the template, the tokenizer's recorded answers (key: JSON of its arguments), and for a synchronous worker its buffer. */
export interface TemplateInit { template: string; tokens: [string, number[]][]; sync?: SharedArrayBuffer }
/** One request: render this history (as the engine would) and report the rendered length (or, synchronous, the state). */
export interface TemplateJob { id: number; chatHistory: ChatHistoryItem[]; availableFunctions?: ChatModelFunctions; documentFunctionParams?: boolean; maxChars: number;
  /** How the template writes a tool's text, as the parent worked it out (tool-results.ts); unknown: node-llama-cpp's way. */
  toolResults?: ToolResultForm }
/** The answer: the rendered length, or why it could not be rendered. */
export type TemplateResult = { id: number; chars: number } | { id: number; error: string; tooLong?: boolean };

declare const self: Worker;

let wrapper: JinjaTemplateChatWrapper | undefined;
let initError = "";
let shared: { slots: Int32Array; bytes: Uint8Array } | undefined;
/** The job being rendered's tool-result form (the wrapper reads it while rendering). */
let toolResults: ToolResultForm | undefined;

/** Renders one job: the state, or why not (a JS string past its maximum length throws RangeError: an explosion, not a bug). */
function render(job: TemplateJob): { state?: ReturnType<JinjaTemplateChatWrapper["generateContextState"]>; chars: number; error?: string; tooLong?: boolean } {
  try {
    if (!wrapper) throw new Error(initError || "the chat template could not be loaded");
    toolResults = job.toolResults;
    const state = wrapper.generateContextState({ chatHistory: job.chatHistory, availableFunctions: job.availableFunctions, documentFunctionParams: job.documentFunctionParams ?? true });
    const chars = state.contextText.toString().length;
    return chars > job.maxChars ? { chars, error: `rendered ${chars} characters`, tooLong: true } : { state, chars };
  } catch (e) {
    return { chars: 0, error: String((e as Error)?.message ?? e).slice(0, 300), tooLong: e instanceof RangeError };
  }
}

function answerShared(job: TemplateJob) {
  const { slots, bytes } = shared!;
  const r = render(job);
  let status: number = r.error ? (r.tooLong ? STATUS.TOO_LONG : STATUS.ERROR) : STATUS.OK;
  let data = new TextEncoder().encode(r.state ? stateToJson(r.state) : r.error ?? "");
  if (data.length > bytes.length) { status = STATUS.TOO_LONG; data = new TextEncoder().encode(`rendered state of ${data.length} bytes`); }
  bytes.set(data.subarray(0, bytes.length));
  Atomics.store(slots, SLOT.STATUS, status);
  Atomics.store(slots, SLOT.LENGTH, Math.min(data.length, bytes.length));
  Atomics.store(slots, SLOT.DONE, job.id);
  Atomics.notify(slots, SLOT.DONE);
}

/** A one-off question (a worker of its own, terminated after): how the template writes a tool's text (tool-results.ts). */
export interface TemplateProbe { probe: string }

/** One message from the parent: the first is the init, every later one a job; or a probe alone. */
export function handleMessage(msg: TemplateInit | TemplateJob | TemplateProbe) {
  // `probing` first: the parent's bound on the render starts now, not while this worker was loading.
  if ("probe" in msg) { self.postMessage({ probing: true }); self.postMessage({ probe: toolResultForm(msg.probe) ?? null }); return; }
  if (!("id" in msg)) {
    const known = new Map(msg.tokens);
    // Strings the engine's resolution never asked about cannot change the settings it saw: "not one token".
    const tokenizer = (...args: unknown[]) => known.get(JSON.stringify(args)) ?? [-1, -1];
    // Tool results written as the template writes a tool message's text (tool-results.ts), as the engine's wrapper does:
    // in the form the parent worked out in a worker of its own (a probe here would count against the request's bound).
    try { wrapper = withToolResults(new JinjaTemplateChatWrapper({ template: msg.template, tokenizer: tokenizer as never }), () => toolResults); } catch (e) { initError = String((e as Error)?.message ?? e); }
    if (msg.sync) {
      shared = { slots: new Int32Array(msg.sync, 0, HEADER_BYTES / 4), bytes: new Uint8Array(msg.sync, HEADER_BYTES) };
      Atomics.store(shared.slots, SLOT.READY, 1);
      Atomics.notify(shared.slots, SLOT.READY);
    }
    self.postMessage({ ready: true });
    return;
  }
  if (shared) return answerShared(msg);
  const r = render(msg);
  self.postMessage(r.error ? { id: msg.id, error: r.error, tooLong: r.tooLong } : { id: msg.id, chars: r.chars } satisfies TemplateResult);
}
