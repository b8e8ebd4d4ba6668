/**
 * Bounded chat-template rendering. node-llama-cpp renders a model's Jinja chat template
 * synchronously, on the event loop, on every chat; a template whose cost grows with the request
 * (`range(messages|length * 10**9)`, content doubled per message) passes the start-up trial and
 * then stalls the whole server on the first such chat. For a model whose resolved wrapper is a
 * Jinja template:
 * - each request's history is first rendered in a small pool of worker threads (limits.chatTemplateWorkers),
 *   under a deadline (the worker is terminated and respawned) and an output cap, without holding the event
 *   loop; only a request that rendered within both reaches node-llama-cpp;
 * - every render node-llama-cpp (and the engine's token count) then makes goes through template-sync.ts:
 *   made by a worker within the same bounds, so a render on a history the check did not see (the model's
 *   own answer, function-call rounds, a context shift) cannot stall the server either.
 * Its built-in TypeScript wrappers have no such risk and are not bounded. Memory: Bun's workers take no
 * heap limit (resourceLimits is not honoured in Bun 1.4), so a render's memory is bounded by its deadline.
 */
import { GeneralChatWrapper, JinjaTemplateChatWrapper, resolveChatWrapper, type ChatHistoryItem, type ChatModelFunctions, type ChatWrapper, type LlamaModel } from "node-llama-cpp";
import { configSchema } from "../config/schema";
import { InvalidRequestError } from "../errors";
import { SyncRenderer } from "./template-sync";
import type { TemplateInit, TemplateJob, TemplateProbe, TemplateResult } from "./template-render";
import type { ToolResultForm } from "./tool-results";
import { describeWrapper, rebuildWrapper, type WrapperChoice, type WrapperMemory } from "./wrapper-choice";

/** The bounds: limits.chatTemplateMs, limits.chatTemplateChars and limits.chatTemplateWorkers in the config. */
export interface TemplateLimits { ms: number; chars: number; workers?: number }

/** The config schema's defaults for limits.chatTemplate* (for engines built without a config). */
export function defaultTemplateLimits(): TemplateLimits {
  const limits = configSchema.shape.limits.parse({});
  return { ms: limits.chatTemplateMs, chars: limits.chatTemplateChars, workers: limits.chatTemplateWorkers };
}

/** Time a fresh worker may take to load (it imports node-llama-cpp and builds the wrapper); not part of a request's deadline. */
const READY_MS = 60_000;

/**
 * The model's file name as node-llama-cpp may read it (it ranks wrappers by names in it). serve loads each model
 * through /proc/self/fd/N (integrity/resolve.ts), so node-llama-cpp's own is the descriptor's number: it says
 * nothing about the model, and it changed with the order files were opened, so a remembered wrapper (keyed by it)
 * missed whenever a model was added, removed or a template trial opened a pipe first (operator run). None is given.
 */
function fileNameOf(model: LlamaModel): string | undefined {
  return model.filename && !/^\d+$/.test(model.filename) ? model.filename : undefined;
}

/**
 * The model's chat wrapper, resolved as `resolveChatWrapper(model)` does, and a bound when it is a
 * Jinja template. The tokenizer's answers are recorded so the workers build the identical wrapper.
 * No `llama` is passed: node-llama-cpp would otherwise fall back to its native (C++) renderer for a
 * template its JS renderer cannot parse, which nothing could bound (serve refuses such templates).
 * For a Jinja template the wrapper returned renders through the synchronous worker (template-sync.ts).
 * `memory`: a choice remembered from an earlier start to rebuild instead, and where to report a fresh resolution.
 */
export function resolveBoundedWrapper(model: LlamaModel, limits: TemplateLimits, memory?: WrapperMemory): { chatWrapper: ChatWrapper; templateBound?: TemplateBound; remembered: boolean } {
  const { options, tokens } = wrapperOptions(model);
  // A choice remembered for these bytes and this build (wrapper-choice.ts) skips resolving (hundreds of ms at start).
  let remembered: ChatWrapper | undefined;
  try { remembered = memory?.choice && rebuildWrapper(memory.choice, options); } catch { /* resolved from scratch below */ }
  const chatWrapper = remembered || (resolveChatWrapper(options) ?? new GeneralChatWrapper());
  if (!remembered && memory?.remember) {
    const choice = describeWrapper(chatWrapper, options);
    if (choice) memory.remember(choice);
  }
  if (!(chatWrapper instanceof JinjaTemplateChatWrapper)) return { chatWrapper, remembered: !!remembered };
  const bound = new TemplateBound({ template: chatWrapper.template, tokens: [...tokens] }, limits);
  // Everything else (settings, function-call syntax) is the resolved wrapper's own; only rendering moves out.
  const bounded = Object.create(chatWrapper) as JinjaTemplateChatWrapper;
  bounded.generateContextState = (options) => bound.renderSync(options) as ReturnType<JinjaTemplateChatWrapper["generateContextState"]>;
  return { chatWrapper: bounded, templateBound: bound, remembered: !!remembered };
}

/**
 * What node-llama-cpp resolves a model's wrapper from, as serve hands it over; the tokenizer records its answers
 * (`tokens`) so the render workers build the identical wrapper.
 */
function wrapperOptions(model: LlamaModel) {
  const tokens = new Map<string, number[]>();
  const tokenize = model.tokenizer as unknown as (...args: unknown[]) => number[];
  // With the real tokenizer's methods: node-llama-cpp's Llama 3.1/3.2 checks call tokenizer.isSpecialToken for any
  // model with a single-token <|eom_id|> (every Llama 3.1+ GGUF), and serve failed to start on all of them.
  const { detokenize, isSpecialToken, isEogToken } = model.tokenizer;
  const tokenizer = Object.assign((...args: unknown[]) => {
    const result = tokenize(...args);
    tokens.set(JSON.stringify(args), [...result]);
    return result;
  }, { detokenize, isSpecialToken, isEogToken });
  const options = {
    bosString: model.tokens.bosString, architecture: model.fileInfo?.metadata?.general?.architecture,
    filename: fileNameOf(model), fileInfo: model.fileInfo, tokenizer: tokenizer as never,
  };
  return { options, tokens };
}

/**
 * The wrapper resolveBoundedWrapper resolves for this model when it remembers none (unbounded), and the choice it
 * would then remember (undefined: none): models add's trial run renders with it and hands the choice to the first
 * start (integrity/model-preflight.ts). `model`: loaded through a descriptor path, as serve loads it (fileNameOf).
 */
export function resolveWrapperChoice(model: LlamaModel): { chatWrapper: ChatWrapper; choice?: WrapperChoice } {
  const { options } = wrapperOptions(model);
  const chatWrapper = resolveChatWrapper(options) ?? new GeneralChatWrapper();
  return { chatWrapper, choice: describeWrapper(chatWrapper, options) };
}

type Entry = { w: Worker; ready: Promise<void>; busy: boolean };

/** A pool of render workers per Jinja-templated model (checks run side by side), and its synchronous renderer. */
export class TemplateBound {
  private readonly pool: Entry[] = [];
  private readonly waiting: (() => void)[] = [];
  private readonly sync: SyncRenderer;
  private lastId = 0;
  private disposed = false;
  /** How the template writes a tool's text, once the engine has worked it out (tool-results.ts): sent with each render. */
  toolResults: () => ToolResultForm | undefined = () => undefined;

  constructor(private readonly init: TemplateInit, private readonly limits: TemplateLimits) {
    this.pool.push(this.spawn()); // at load, so the first chat does not wait for a worker to start
    this.sync = new SyncRenderer(init, limits, workerUrl(), refuse, () => this.toolResults());
  }

  private get size() { return Math.max(1, this.limits.workers ?? 1); }

  /** Resolves once the history renders within the bounds; rejects with a 400 (chat_template_bound) otherwise. */
  async check(chatHistory: ChatHistoryItem[], availableFunctions?: ChatModelFunctions): Promise<void> {
    const entry = await this.acquire();
    try { await this.render(entry, chatHistory, availableFunctions); } finally { this.release(entry); }
  }

  /** node-llama-cpp's own renders (see template-sync.ts). */
  renderSync(options: Parameters<JinjaTemplateChatWrapper["generateContextState"]>[0]) {
    return this.sync.render(options);
  }

  /** Stops the workers (engine disposal). */
  dispose() {
    this.disposed = true;
    for (const e of this.pool.splice(0)) e.w.terminate();
    this.sync.dispose();
  }

  /** An idle worker, a new one while the pool is below its size, or the next one released (arrival order). */
  private async acquire(): Promise<Entry> {
    for (;;) {
      const idle = this.pool.find((e) => !e.busy);
      if (idle) { idle.busy = true; return idle; }
      if (this.pool.length < this.size) {
        const e = this.spawn();
        this.pool.push(e);
        e.busy = true;
        return e;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private release(entry: Entry) {
    entry.busy = false;
    this.waiting.shift()?.();
  }

  private async render(entry: Entry, chatHistory: ChatHistoryItem[], availableFunctions?: ChatModelFunctions): Promise<void> {
    await entry.ready;
    const { w } = entry, id = ++this.lastId;
    const result = await new Promise<TemplateResult | "timeout">((resolve) => {
      const finish = (r: TemplateResult | "timeout") => { clearTimeout(timer); w.removeEventListener("message", onMessage); resolve(r); };
      const onMessage = (e: MessageEvent<TemplateResult>) => { if (e.data?.id === id) finish(e.data); };
      const timer = setTimeout(() => finish("timeout"), this.limits.ms);
      w.addEventListener("message", onMessage);
      w.postMessage({ id, chatHistory, availableFunctions, maxChars: this.limits.chars, toolResults: this.toolResults() } satisfies TemplateJob);
    });
    if (result === "timeout") {
      // The worker is stuck in the template: only terminating it stops the loop and frees what it built.
      this.kill(entry);
      throw refuse(`did not finish rendering these messages within ${this.limits.ms} ms (limits.chatTemplateMs)`);
    }
    if ("error" in result) {
      if (result.tooLong) {
        this.kill(entry); // a heap that held a string near the engine's maximum is not kept
        throw refuse(`produced more than ${this.limits.chars} characters for these messages (limits.chatTemplateChars): ${result.error}`);
      }
      throw new InvalidRequestError(`The model's chat template cannot render these messages: ${result.error}`, "messages", "chat_template_error");
    }
  }

  private spawn(): Entry {
    const w = new Worker(workerUrl());
    w.unref(); // never keeps the process alive
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { this.kill(entry); reject(refuse(`worker did not start within ${READY_MS / 1000} s`)); }, READY_MS);
      w.addEventListener("message", (e: MessageEvent<{ ready?: boolean }>) => { if (e.data?.ready) { clearTimeout(timer); resolve(); } }, { once: true });
      w.addEventListener("error", (e) => { clearTimeout(timer); this.kill(entry); reject(refuse(`worker failed: ${e.message}`)); }, { once: true });
    });
    ready.catch(() => undefined); // a failed start is reported to the request that waits on it
    const entry: Entry = { w, ready, busy: false };
    w.postMessage(this.init);
    return entry;
  }

  /** Terminates a worker and drops it from the pool (the next check past the pool's size spawns a fresh one). */
  private kill(entry: Entry) {
    entry.w.terminate();
    const i = this.pool.indexOf(entry);
    if (i >= 0) this.pool.splice(i, 1);
    if (!this.disposed && this.pool.length === 0) this.pool.push(this.spawn()); // keep one warm
  }
}

/**
 * How `template` writes a tool's text (tool-results.ts), asked of a worker of its own within `ms` (terminated after):
 * the probe renders an untrusted template, never on the event loop. Undefined when it fails or runs out of time.
 */
export async function probeToolResults(template: string, ms: number): Promise<ToolResultForm | undefined> {
  const w = new Worker(workerUrl());
  w.unref();
  try {
    return await new Promise<ToolResultForm | undefined>((resolve) => {
      // The worker's start (it loads node-llama-cpp) is bounded as a render worker's; the render itself by `ms`.
      let timer = setTimeout(() => resolve(undefined), READY_MS);
      w.addEventListener("message", (e: MessageEvent<{ probe?: ToolResultForm | null; probing?: boolean }>) => {
        if (e.data?.probing) { clearTimeout(timer); timer = setTimeout(() => resolve(undefined), ms); }
        if (e.data && "probe" in e.data) { clearTimeout(timer); resolve(e.data.probe ?? undefined); }
      });
      w.addEventListener("error", () => { clearTimeout(timer); resolve(undefined); }, { once: true });
      w.postMessage({ probe: template } satisfies TemplateProbe);
    });
  } finally {
    w.terminate();
  }
}

/**
 * The worker's module: next to this file when run from source; in the compiled binary, where bun put that entrypoint
 * (scripts/build.ts): its path under src/, as .js, under the folder of the binary's entry (Bun.main). Resolved from the
 * entry, not from import.meta.url: the build's code splitting decides which chunk holds this code, and where.
 */
function workerUrl(): URL {
  const compiled = import.meta.url.includes("/$bunfs/") || import.meta.url.includes("~BUN");
  return compiled ? new URL("./engine/template-worker.js", Bun.pathToFileURL(Bun.main)) : new URL("./template-worker.ts", import.meta.url);
}

function refuse(why: string) {
  return new InvalidRequestError(`The model's chat template ${why}; the request is refused so that it cannot stall the server.`, "messages", "chat_template_bound");
}
