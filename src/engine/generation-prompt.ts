/**
 * A fresh generation's prompt as the model's own template ends it. node-llama-cpp renders the generation prompt as an
 * empty last assistant message, and two things it then leaves at the end are not the template's (a model-family run
 * and its fix-attack run, against llama-server's /apply-template):
 * - after a tool result, blank lines as text after the generation prompt (`assistant\n` + `\n\n`: Qwen 2.5,
 *   Llama 3.1, Qwen 3): the model read four newlines where it was trained on one or two;
 * - for a reasoning template that writes every last assistant message with its thought block (Qwen 3), that block,
 *   empty: `<think>\n\n</think>\n\n` is the template's own `enable_thinking=false` form, so every request ran with
 *   thinking off (llama-server: on, the template's default). node-llama-cpp takes it off only when the response has text.
 * Both are taken off here. Template text is special-token text and user text never ends a fresh prompt, so blank text
 * at the very end can only be node-llama-cpp's.
 */
import { isLlamaText, LlamaText, SpecialTokensText, type ChatHistoryItem, type ChatWrapper, type ChatWrapperGeneratedContextState } from "node-llama-cpp";
import { hasCalls } from "./tool-results";

/** A segment marker's text, special tokens' text included ("" for anything else). */
const textOf = (t: unknown): string =>
  typeof t === "string" ? t : isLlamaText(t) ? t.values.map((v) => (typeof v === "string" ? v : v instanceof SpecialTokensText ? v.value : "")).join("") : "";

/** `keepThought`: the empty thought block stays (asked not to think: it is the template's own enable_thinking=false form). */
export function generationPrompt<S extends ChatWrapperGeneratedContextState>(wrapper: ChatWrapper, history: readonly ChatHistoryItem[], state: S, keepThought = false): S {
  const last = history.at(-1);
  if (last?.type !== "model" || last.response.length) return state;
  let values = state.contextText.values;
  if (hasCalls(history)) {
    let k = values.length;
    while (k > 1 && typeof values[k - 1] === "string" && !(values[k - 1] as string).trim() && values[k - 2] instanceof SpecialTokensText) k--;
    values = values.slice(0, k);
  }
  const thought = wrapper.settings.segments?.thought;
  const end = values.at(-1);
  const prefix = textOf(thought?.prefix), suffix = textOf(thought?.suffix).trimEnd();
  if (!keepThought && thought && !thought.openOnResponseStart && prefix && suffix && end instanceof SpecialTokensText) {
    const value = end.value.trimEnd(), at = value.lastIndexOf(prefix);
    if (at >= 0 && value.endsWith(suffix) && value.slice(at + prefix.length, value.length - suffix.length).trim() === "") {
      const rest = value.slice(0, at);
      values = [...values.slice(0, -1), ...(rest ? [new SpecialTokensText(rest)] : [])];
    }
  }
  return values === state.contextText.values ? state : { ...state, contextText: LlamaText(values) };
}

/** `wrapper` with its contexts ending as above (a new object over it; the wrapper itself is left as it is). */
export function withGenerationPrompt<W extends ChatWrapper>(wrapper: W, keepThought = false): W {
  const ended = Object.create(wrapper) as W;
  ended.generateContextState = (options) => generationPrompt(wrapper, options.chatHistory, wrapper.generateContextState(options), keepThought);
  return ended;
}

/**
 * Whether the template itself writes the empty thought block at a fresh generation's end (Qwen 3): asked not to
 * think, such a model is given the template's own block, not one more from node-llama-cpp's thought segment (a
 * prompt had two: `<think>\n\n</think>\n\n<think>\n\n</think>\n\n`, a fix-attack run).
 */
export function writesEmptyThought(wrapper: ChatWrapper): boolean {
  const thought = wrapper.settings.segments?.thought;
  if (!thought || thought.openOnResponseStart) return false;
  const history: ChatHistoryItem[] = [{ type: "user", text: "x" }, { type: "model", response: [] }];
  const state = wrapper.generateContextState({ chatHistory: history });
  return generationPrompt(wrapper, history, state) !== state;
}
