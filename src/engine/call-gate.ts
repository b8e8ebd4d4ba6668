/**
 * Beside `tool_choice: "auto"`, a JSON answer format (`response_format`, Responses `text.format`) is generated under
 * one grammar (tools.ts callOrAnswerSchema): the answer, or one call written as `{"name": <tool>, "arguments": {...}}`.
 * node-llama-cpp cannot hold a grammar and the template's call syntax at once. Streamed text is held while it may
 * still become such a call, and goes out as soon as it cannot; a call is never sent as content.
 */
import { isObject } from "../util/is-object";
import type { ToolCall } from "./engine";
import { newCallId } from "./tools";

/** Whitespace between JSON tokens is the model's choice; the call's opening is compared without it. */
const compact = (s: string) => s.replace(/\s+/g, "");

/** `send`: where released text goes (none when not streamed). */
export function callGate(tools: readonly string[], send: ((text: string) => void) | undefined) {
  const openings = tools.map((name) => compact(`{"name":${JSON.stringify(name)},"arguments":`));
  let text = "", answer = false, opened = false;
  const push = (chunk: string): void => {
    text += chunk;
    if (answer) return void send?.(chunk);
    if (opened) return;
    const c = compact(text);
    opened = openings.some((o) => c.startsWith(o));
    if (opened || openings.some((o) => o.startsWith(c))) return;
    answer = true;
    send?.(text);
  };
  return {
    push,
    /**
     * At the end, with `tail` (text node-llama-cpp never released, token-tally.ts): the call when the whole text is
     * exactly one (and none was released); otherwise what is held goes out.
     */
    finish(tail: string): ToolCall | undefined {
      push(tail);
      if (answer) return undefined;
      const call = exactCall(text, tools);
      if (!call) send?.(text);
      return call;
    },
  };
}

function exactCall(text: string, tools: readonly string[]): ToolCall | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined; // cut short by max_tokens or a stop: the answer's text, as generated
  }
  if (!isObject(v) || Object.keys(v).join() !== "name,arguments") return undefined;
  if (typeof v.name !== "string" || !tools.includes(v.name) || !isObject(v.arguments)) return undefined;
  return { id: newCallId(), name: v.name, arguments: JSON.stringify(v.arguments) };
}
