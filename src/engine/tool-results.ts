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
 * as before. The probe renders an untrusted template: never on the server's event loop (a template worker does it).
 */
import { Template } from "@huggingface/jinja";
import { LlamaText, type ChatHistoryItem, type ChatWrapper } from "node-llama-cpp";

/** How the template writes a tool message's text: as it is, or as a JSON string. */
export type ToolResultForm = "text" | "json";

/** Characters JSON escapes, so the two forms cannot be mistaken for each other. */
const PROBE = "appliance-probe \"result\"\nline two";
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
 * A template's form, known once worked out. `get` never renders: undefined until `ensure` (or, inside a template
 * worker, `now`) has run. `ensure` works it out once, however it is given to (a bounded worker: template-bound.ts).
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

  /** Rendered here and now (inside a template worker, whose every render is already bounded by its parent). */
  static now(template: string | undefined): () => ToolResultForm | undefined {
    let known: { form?: ToolResultForm } | undefined;
    return () => (known ??= { form: toolResultForm(template) }).form;
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
    const f = typeof result === "string" ? form() : undefined;
    if (typeof result !== "string" || !f) return base.call(this, name, params, typeof result === "string" ? jsonOr(result) : result);
    const text = f === "json" ? JSON.stringify(result) : result;
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
  return over;
}
