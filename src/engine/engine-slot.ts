/**
 * An Engine that stands for one still loading: every call goes to the engine bound to it, and before that throws.
 * serve builds its HTTP app (guards, routes, metrics) on one while llama.cpp builds the first model's context on its
 * own thread, when the JS thread has nothing else to do (server/create-server.ts), instead of after: nothing in the
 * app calls the engine until a request comes, and none comes before the server listens, after the engine is bound.
 */
import type { ChatTurn, Embeddings, Engine, GenerateCall, Generation, ModelInfo, ToolSpec, ToolUse, WarmUp } from "./engine";

const noArrival = () => {};

export class EngineSlot implements Engine {
  #engine: Engine | undefined;

  /** The loaded engine; once. */
  bind(engine: Engine): void {
    if (this.#engine) throw new Error("EngineSlot: bound twice");
    this.#engine = engine;
  }

  private get engine(): Engine {
    if (!this.#engine) throw new Error("the engine is not loaded yet");
    return this.#engine;
  }

  get backend(): string { return this.engine.backend; }
  models(): ModelInfo[] { return this.engine.models(); }
  model(id: string): ModelInfo | undefined { return this.engine.model(id); }
  ready(): boolean { return this.#engine?.ready() ?? false; }
  chat(call: GenerateCall & { messages: ChatTurn[]; tools?: ToolUse; thinking?: boolean }): Promise<Generation> { return this.engine.chat(call); }
  complete(call: GenerateCall & { prompt: string | number[] }): Promise<Generation> { return this.engine.complete(call); }
  embed(model: string, inputs: (string | number[])[], signal: AbortSignal): Promise<Embeddings> { return this.engine.embed(model, inputs, signal); }
  specialTokens(model: string): string[] { return this.engine.specialTokens(model); }
  countTokens(model: string, text: string): number { return this.engine.countTokens(model, text); }
  tokenize(model: string, text: string, addBos?: boolean): number[] { return this.engine.tokenize(model, text, addBos); }
  chatTokens(model: string, messages: ChatTurn[], tools?: ToolSpec[]): Promise<number[]> { return this.engine.chatTokens(model, messages, tools); }
  detokenize(model: string, tokens: number[], param?: string, after?: number[]): string { return this.engine.detokenize(model, tokens, param, after); }
  partialBytes(model: string, token: number): number[] | undefined { return this.engine.partialBytes?.(model, token); }
  load(): { active: number; queued: number } { return this.#engine?.load() ?? { active: 0, queued: 0 }; }
  expectArrival(): () => void { return this.engine.expectArrival?.() ?? noArrival; }
  warmUp(): Promise<WarmUp[]> { return this.engine.warmUp?.() ?? Promise.resolve([]); }
  dispose(): Promise<void> { return this.#engine?.dispose() ?? Promise.resolve(); }
}
