/**
 * A reasoning model's generation prompt as its own template writes it.
 *
 * Why: node-llama-cpp renders a Jinja template's generation prompt as an empty last assistant message, and a Qwen3
 * template writes every last assistant message with its thought block, empty here: `<think>\n\n</think>\n\n`, which
 * is exactly what the template writes for `enable_thinking=false`. node-llama-cpp removes that block only when the
 * last response has text, so every Qwen3 request ran with thinking switched off (llama-server: on, the template's
 * default). Here an empty thought block at the very end of a fresh generation's prompt is taken off again.
 */
import { isLlamaText, LlamaText, SpecialTokensText, type ChatHistoryItem, type ChatWrapper, type ChatWrapperGeneratedContextState } from "node-llama-cpp";

/** A segment marker's text, special tokens' text included ("" for anything else). */
const textOf = (t: unknown): string =>
  typeof t === "string" ? t : isLlamaText(t) ? t.values.map((v) => (typeof v === "string" ? v : v instanceof SpecialTokensText ? v.value : "")).join("") : "";

export function openThinking<S extends ChatWrapperGeneratedContextState>(wrapper: ChatWrapper, history: readonly ChatHistoryItem[], state: S): S {
  const thought = wrapper.settings.segments?.thought;
  const last = history.at(-1);
  if (!thought || thought.openOnResponseStart || last?.type !== "model" || last.response.length) return state;
  const prefix = textOf(thought.prefix), suffix = textOf(thought.suffix);
  const values = state.contextText.values;
  // After a tool result node-llama-cpp also writes blank lines after the block (as text): taken off with it.
  let k = values.length - 1;
  while (k > 0 && typeof values[k] === "string" && !(values[k] as string).trim()) k--;
  const end = values[k];
  if (!prefix || !suffix || !(end instanceof SpecialTokensText)) return state;
  const value = end.value.trimEnd(), at = value.lastIndexOf(prefix);
  if (at < 0 || !value.endsWith(suffix.trimEnd()) || value.slice(at + prefix.length, value.length - suffix.trimEnd().length).trim() !== "") return state;
  const rest = value.slice(0, at);
  return { ...state, contextText: LlamaText([...values.slice(0, k), ...(rest ? [new SpecialTokensText(rest)] : [])]) };
}
