/**
 * A tool result in the prompt as the model's own template writes it.
 *
 * OpenAI clients send a tool result as text (`{"role":"tool","content":"…"}`), and a chat template writes that text
 * either as it is (Qwen 2.5/3, DeepSeek-R1, Granite: `<tool_response>\nsunny\n</tool_response>`) or as a JSON string
 * (Llama 3.1+ and gpt-oss apply `tojson` to it: `"sunny"`). node-llama-cpp's history holds a result as a JSON value
 * and most of its formats write `JSON.stringify` of it, so on the templates of the first kind a text result came out
 * JSON-quoted: a multi-line file or page a tool returned reached the model as one line of `\n` and `\"` escapes
 * (Qwen 3 and DeepSeek-R1 GGUFs; a model-family run against the templates rendered by @huggingface/jinja).
 *
 * Here the template itself is asked once, with a probe text, which of the two it does; the wrapper then writes each
 * result's text that way between its own result markers. A template that cannot render the probe conversation (one
 * with no tool role, strict call-id rules), or not in time, keeps node-llama-cpp's rendering of the text read as JSON,
 * as before. The probe renders an untrusted template: never on the server's event loop (a worker of its own does it,
 * template-bound.ts; a Jinja-served model's render worker is handed the answer with each render).
 */
import { Template } from "@huggingface/jinja";
import { JinjaTemplateChatWrapper, LlamaText, type ChatHistoryItem, type ChatWrapper } from "node-llama-cpp";

/** How the template writes a tool message's text: as it is, or as a JSON string. */
export type ToolResultForm = "text" | "json";

/** Characters JSON escapes, so the two forms cannot be mistaken for each other. */
const PROBE = "appliance-probe \"result\"\nline two";
/** Set on a render whose results jinjaCallsState has written in the template's form already. */
const WRITTEN = Symbol("tool results written");
/** What stands for the result while the wrapper renders it (plain letters: JSON leaves them as they are). */
const SLOT = "applianceToolResultSlot";

/**
 * The template's form, rendered once with a one-call conversation (a nine-character alphanumeric call id: Mistral's
 * templates refuse others); undefined when it fails to render or writes the probe neither way.
 */
export function toolResultForm(template: string | undefined): ToolResultForm | undefined {
  if (!template) return undefined;
  const call = { id: "call0abcd", type: "function", function: { name: "probe", arguments: { q: 1 } } };
  try {
    const out = new Template(template).render({
      messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "", tool_calls: [call] },
        { role: "tool", tool_call_id: call.id, name: "probe", content: PROBE }],
      tools: [{ type: "function", function: { name: "probe", description: "", parameters: { type: "object", properties: { q: { type: "number" } } } } }],
      add_generation_prompt: true, bos_token: "", eos_token: "",
    });
    if (out.includes(JSON.stringify(PROBE))) return "json";
    if (out.includes(PROBE)) return "text";
  } catch { /* no tool role, or rules the probe breaks: unknown */ }
  return undefined;
}

/**
 * A template's form, known once worked out. `get` never renders: undefined until `ensure` has run. `ensure` works it
 * out once, however it is given to (a bounded worker of its own: template-bound.ts).
 */
export class ToolResultsOf {
  private known?: { form?: ToolResultForm };
  private pending?: Promise<void>;

  constructor(private readonly work: () => Promise<ToolResultForm | undefined>) {}

  get(): ToolResultForm | undefined { return this.known?.form; }

  /** Worked out by the time it resolves (a failure or a timeout: unknown, node-llama-cpp's rendering). */
  ensure(): Promise<void> {
    if (this.known) return Promise.resolve();
    return this.pending ??= this.work().then((form) => { this.known = { form }; }, () => { this.known = {}; });
  }
}

/** Whether a history holds a call (and so its result). */
export const hasCalls = (history: readonly ChatHistoryItem[]) =>
  history.some((h) => h.type === "model" && h.response.some((r) => typeof r === "object" && r.type === "functionCall"));

/** JSON text as a value, anything else as the string itself (node-llama-cpp's view of a result). */
export function jsonOr(text: string): unknown {
  try { return JSON.parse(text); } catch { return text; }
}

/**
 * `wrapper` writing a text result (a string in the history) in `form` (read at first need): its own markers around
 * the text as the template writes it. A new object over the wrapper (its own calls reach the override too).
 */
export function withToolResults<W extends ChatWrapper>(wrapper: W, form: () => ToolResultForm | undefined): W {
  const over = Object.create(wrapper) as W;
  const base = wrapper.generateFunctionCallResult;
  over.generateFunctionCallResult = function (name, params, result) {
    // Already written in the form by jinjaCallsState (node-llama-cpp's second try of a Jinja render comes here).
    const written = (this as { [WRITTEN]?: ToolResultForm })[WRITTEN];
    const f = typeof result === "string" ? written ?? form() : undefined;
    if (typeof result !== "string" || !f) return base.call(this, name, params, typeof result === "string" ? jsonOr(result) : result);
    const text = written === "json" ? `"${result}"` : f === "json" ? JSON.stringify(result) : result;
    const slotted = base.call(this, name, params, SLOT);
    // The slot as the wrapper wrote it: JSON-quoted (most), quoted twice (formats that stringify results), or bare.
    // The last one: the call's name and arguments (which the client chose) come before the result in every format.
    const marks = [JSON.stringify(JSON.stringify(SLOT)), JSON.stringify(SLOT), SLOT];
    const values = [...slotted.values];
    for (let i = values.length - 1; i >= 0; i--) {
      const v = values[i];
      const mark = typeof v === "string" ? marks.find((m) => v.includes(m)) : undefined;
      if (typeof v !== "string" || !mark) continue;
      const at = v.lastIndexOf(mark);
      values[i] = v.slice(0, at) + text + v.slice(at + mark.length);
      return LlamaText(values);
    }
    return base.call(this, name, params, jsonOr(result));
  };
  if (rendersJinjaCalls(wrapper)) over.generateContextState = jinjaCallsState(wrapper.generateContextState, form);
  return over;
}

/**
 * A Jinja template whose call syntax node-llama-cpp read (`usingJinjaFunctionCallTemplate`), rendered by this very
 * wrapper (not the engine's bounded stand-in, whose worker does it): node-llama-cpp hands the template real tool
 * messages, never calling generateFunctionCallResult, their content a placeholder it replaces with the result after
 * the render, JSON-dumped where it judged the template needs it (`_stringifyFunctionResult`: it does for one that
 * trims or concatenates the content, which its object probe made throw). So the text goes in as the template would
 * write it — as it is, or, where the template applies `tojson` to the placeholder (its quotes around it), escaped —
 * and is never dumped again (a fix-attack run: `| trim` and `'…' + content` templates got `"line one \"…\nline two"`).
 */
function rendersJinjaCalls(w: ChatWrapper): w is JinjaTemplateChatWrapper {
  return w instanceof JinjaTemplateChatWrapper && w.usingJinjaFunctionCallTemplate && w.generateContextState === JinjaTemplateChatWrapper.prototype.generateContextState &&
    typeof (w as unknown as { _stringifyFunctionResult?: unknown })._stringifyFunctionResult === "boolean";
}

function jinjaCallsState(base: ChatWrapper["generateContextState"], form: () => ToolResultForm | undefined): ChatWrapper["generateContextState"] {
  return function (this: ChatWrapper, options) {
    const f = form();
    const text = (t: string) => (f === "json" ? JSON.stringify(t).slice(1, -1) : f === "text" ? t : jsonOr(t));
    const chatHistory = options.chatHistory.map((h) => h.type !== "model" ? h : { ...h, response: h.response.map((r) =>
      typeof r === "object" && r.type === "functionCall" && typeof r.result === "string" ? { ...r, result: text(r.result) } : r) });
    // Unknown form: node-llama-cpp's own rendering of the text read as JSON, as before.
    // When its first render throws (a template refusing two calls in a turn), node-llama-cpp renders again through
    // generateFunctionCallResult: WRITTEN tells it the text is already in the form (it was escaped twice).
    const self = f ? Object.assign(Object.create(this) as object, { _stringifyFunctionResult: false, [WRITTEN]: f }) : this;
    return base.call(self, { ...options, chatHistory });
  };
}
