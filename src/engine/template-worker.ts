/**
 * Worker side of the chat-template bound (see template-bound.ts). It builds the same
 * JinjaTemplateChatWrapper the engine resolved (same template; the model's tokenizer replayed
 * from the answers it gave during resolution) and renders each request's history with it, so a
 * template whose cost grows with the request loops here, where the parent can terminate it,
 * and never on the server's event loop. A separate entrypoint of the compiled binary (scripts/build.ts).
 */
import { JinjaTemplateChatWrapper, type ChatHistoryItem, type ChatModelFunctions } from "node-llama-cpp";

/** First message: the template and the tokenizer's recorded answers (key: JSON of its arguments). */
export interface TemplateInit { template: string; tokens: [string, number[]][] }
/** One request: render this history (as the engine would) and report the rendered length. */
export interface TemplateJob { id: number; chatHistory: ChatHistoryItem[]; availableFunctions?: ChatModelFunctions; maxChars: number }
/** The answer: the rendered length, or why it could not be rendered. */
export type TemplateResult = { id: number; chars: number } | { id: number; error: string; tooLong?: boolean };

declare const self: Worker;
let wrapper: JinjaTemplateChatWrapper | undefined;
let initError = "";

self.onmessage = (event: MessageEvent<TemplateInit | TemplateJob>) => {
  const msg = event.data;
  if (!("id" in msg)) {
    const known = new Map(msg.tokens);
    // Strings the engine's resolution never asked about cannot change the settings it saw: "not one token".
    const tokenizer = (...args: unknown[]) => known.get(JSON.stringify(args)) ?? [-1, -1];
    try { wrapper = new JinjaTemplateChatWrapper({ template: msg.template, tokenizer: tokenizer as never }); } catch (e) { initError = String((e as Error)?.message ?? e); }
    self.postMessage({ ready: true });
    return;
  }
  let result: TemplateResult;
  try {
    if (!wrapper) throw new Error(initError || "the chat template could not be loaded");
    const { contextText } = wrapper.generateContextState({ chatHistory: msg.chatHistory, availableFunctions: msg.availableFunctions, documentFunctionParams: true });
    const chars = contextText.toString().length;
    result = chars > msg.maxChars ? { id: msg.id, error: `rendered ${chars} characters`, tooLong: true } : { id: msg.id, chars };
  } catch (e) {
    // A JS string past its maximum length throws RangeError: an output explosion, not a template bug.
    result = { id: msg.id, error: String((e as Error)?.message ?? e).slice(0, 300), tooLong: e instanceof RangeError };
  }
  self.postMessage(result);
};
