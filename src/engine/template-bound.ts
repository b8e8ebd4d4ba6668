/**
 * Bounded chat-template rendering. node-llama-cpp renders a model's Jinja chat template
 * synchronously, on the event loop, on every chat; a template whose cost grows with the request
 * (`range(messages|length * 10**9)`, content doubled per message) passes the start-up trial and
 * then stalls the whole server on the first such chat. For a model whose resolved wrapper is a
 * Jinja template, each request's history is first rendered the same way in a long-lived worker
 * thread, under a deadline (the worker is terminated and respawned) and an output cap; only a
 * request that rendered within both reaches node-llama-cpp. Its built-in TypeScript wrappers
 * have no such risk and are not bounded.
 */
import { GeneralChatWrapper, JinjaTemplateChatWrapper, resolveChatWrapper, type ChatHistoryItem, type ChatModelFunctions, type ChatWrapper, type LlamaModel } from "node-llama-cpp";
import { configSchema } from "../config/schema";
import { InvalidRequestError } from "../errors";
import type { TemplateInit, TemplateResult } from "./template-worker";

/** The bounds: limits.chatTemplateMs and limits.chatTemplateChars in the config. */
export interface TemplateLimits { ms: number; chars: number }

/** The config schema's defaults for limits.chatTemplateMs/Chars (for engines built without a config). */
export function defaultTemplateLimits(): TemplateLimits {
  const limits = configSchema.shape.limits.parse({});
  return { ms: limits.chatTemplateMs, chars: limits.chatTemplateChars };
}

/** Time a fresh worker may take to load (it imports node-llama-cpp and builds the wrapper); not part of a request's deadline. */
const READY_MS = 60_000;

/**
 * The model's chat wrapper, resolved as `resolveChatWrapper(model)` does, and a bound when it is a
 * Jinja template. The tokenizer's answers are recorded so the worker builds the identical wrapper.
 * No `llama` is passed: node-llama-cpp would otherwise fall back to its native (C++) renderer for a
 * template its JS renderer cannot parse, which nothing could bound (serve refuses such templates).
 */
export function resolveBoundedWrapper(model: LlamaModel, limits: TemplateLimits): { chatWrapper: ChatWrapper; templateBound?: TemplateBound } {
  const tokens = new Map<string, number[]>();
  const tokenize = model.tokenizer as unknown as (...args: unknown[]) => number[];
  const tokenizer = (...args: unknown[]) => {
    const result = tokenize(...args);
    tokens.set(JSON.stringify(args), [...result]);
    return result;
  };
  const chatWrapper = resolveChatWrapper({
    bosString: model.tokens.bosString, architecture: model.fileInfo?.metadata?.general?.architecture,
    filename: model.filename, fileInfo: model.fileInfo, tokenizer: tokenizer as never,
  }) ?? new GeneralChatWrapper();
  if (!(chatWrapper instanceof JinjaTemplateChatWrapper)) return { chatWrapper };
  return { chatWrapper, templateBound: new TemplateBound({ template: chatWrapper.template, tokens: [...tokens] }, limits) };
}

/** One worker per Jinja-templated model; renders one request at a time, in arrival order. */
export class TemplateBound {
  private worker?: { w: Worker; ready: Promise<void> };
  private queue: Promise<unknown> = Promise.resolve();
  private lastId = 0;

  constructor(private readonly init: TemplateInit, private readonly limits: TemplateLimits) {
    this.worker = this.spawn(); // at load, so the first chat does not wait for the worker to start
  }

  /** Resolves once the history renders within the bounds; rejects with a 400 (chat_template_bound) otherwise. */
  check(chatHistory: ChatHistoryItem[], availableFunctions?: ChatModelFunctions): Promise<void> {
    const run = this.queue.then(() => this.render(chatHistory, availableFunctions));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Stops the worker (engine disposal). */
  dispose() {
    this.worker?.w.terminate();
    this.worker = undefined;
  }

  private async render(chatHistory: ChatHistoryItem[], availableFunctions?: ChatModelFunctions): Promise<void> {
    const current = this.worker ??= this.spawn();
    await current.ready;
    const { w } = current, id = ++this.lastId;
    const result = await new Promise<TemplateResult | "timeout">((resolve) => {
      const finish = (r: TemplateResult | "timeout") => { clearTimeout(timer); w.removeEventListener("message", onMessage); resolve(r); };
      const onMessage = (e: MessageEvent<TemplateResult>) => { if (e.data?.id === id) finish(e.data); };
      const timer = setTimeout(() => finish("timeout"), this.limits.ms);
      w.addEventListener("message", onMessage);
      w.postMessage({ id, chatHistory, availableFunctions, maxChars: this.limits.chars });
    });
    if (result === "timeout") {
      // The worker is stuck in the template: only terminating it stops the loop and frees what it built.
      this.kill(current);
      throw refuse(`did not finish rendering these messages within ${this.limits.ms} ms (limits.chatTemplateMs)`);
    }
    if ("error" in result) {
      if (result.tooLong) {
        this.kill(current); // a heap that held a string near the engine's maximum is not kept
        throw refuse(`produced more than ${this.limits.chars} characters for these messages (limits.chatTemplateChars): ${result.error}`);
      }
      throw new InvalidRequestError(`The model's chat template cannot render these messages: ${result.error}`, "messages", "chat_template_error");
    }
  }

  private spawn(): { w: Worker; ready: Promise<void> } {
    const w = new Worker(workerUrl());
    w.unref(); // never keeps the process alive
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { this.kill(entry); reject(refuse(`its worker did not start within ${READY_MS / 1000} s`)); }, READY_MS);
      w.addEventListener("message", (e: MessageEvent<{ ready?: boolean }>) => { if (e.data?.ready) { clearTimeout(timer); resolve(); } }, { once: true });
      w.addEventListener("error", (e) => { clearTimeout(timer); this.kill(entry); reject(refuse(`its worker failed: ${e.message}`)); }, { once: true });
    });
    ready.catch(() => undefined); // a failed start is reported to the request that waits on it
    const entry = { w, ready };
    w.postMessage(this.init);
    return entry;
  }

  private kill(entry: { w: Worker }) {
    entry.w.terminate();
    if (this.worker === entry) this.worker = undefined;
  }
}

/**
 * The worker's module: next to this file when run from source; in the compiled binary, where bun put the
 * second entrypoint (scripts/build.ts): its path under src/, as .js, beside the main bundle this code is inlined in.
 */
function workerUrl(): URL {
  const compiled = import.meta.url.includes("/$bunfs/") || import.meta.url.includes("~BUN");
  return new URL(compiled ? "./engine/template-worker.js" : "./template-worker.ts", import.meta.url);
}

function refuse(why: string) {
  return new InvalidRequestError(`The model's chat template ${why}; the request is refused so that it cannot stall the server.`, "messages", "chat_template_bound");
}
