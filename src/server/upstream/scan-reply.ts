/**
 * The response scanner over an upstream's non-streamed answer: every choice's
 * text and tool-call arguments go through a response filter of the choice's own
 * (as generate.ts does for local models), the arguments behind a separator no
 * rule matches, and are written back; a block empties that choice and sets its
 * finish_reason "content_filter".
 */
import type { TextFilter } from "../../guards/response-scan";

type Obj = Record<string, unknown>;
const SEPARATOR = "\u0000\u241Ftool-arguments\u241F\u0000";

/** The scannable parts of one choice: the text and each call's arguments, with a writer for each. */
interface Parts { text: string; args: string[]; write: (text: string, args: string[] | undefined) => void }

function chatParts(c: Obj): Parts {
  const m = (c.message ?? {}) as Obj;
  const calls = Array.isArray(m.tool_calls) ? (m.tool_calls as { function?: { arguments?: unknown } }[]) : [];
  return {
    text: typeof m.content === "string" ? m.content : "",
    args: calls.map((t) => String(t.function?.arguments ?? "")),
    write: (text, args) => {
      if (typeof m.content === "string") m.content = text;
      if (!args) { if (calls.length) delete m.tool_calls; return; }
      calls.forEach((t, i) => { if (t.function) t.function.arguments = args[i]; });
    },
  };
}

function textParts(c: Obj): Parts {
  return { text: typeof c.text === "string" ? c.text : "", args: [], write: (text) => { if (typeof c.text === "string") c.text = text; } };
}

/**
 * Scans `choices` of a chat or completions answer in place, each through a filter of its own from `newFilter`:
 * through one filter, a match could run from one choice into the next and blank them all.
 */
export function scanChoices(choices: Obj[], kind: "chat" | "completions", newFilter: () => TextFilter): void {
  choices.forEach((choice, i) => {
    const p = (kind === "chat" ? chatParts : textParts)(choice), filter = newFilter();
    const [text, ...args] = (filter.push(p.text) + p.args.map((a) => filter.push(SEPARATOR + a)).join("") + filter.end()).split(SEPARATOR);
    const broken = filter.blocked || args.length !== p.args.length;
    p.write(filter.blocked ? "" : text!, broken ? undefined : args);
    if (broken && (filter.blocked || p.args.length)) choices[i]!.finish_reason = "content_filter";
  });
}

/** Scans what is left at the end of a stream: held-back text plus the calls' arguments; the calls are dropped on a block. */
export function scanStreamEnd(filter: TextFilter, args: string[]): { text: string; args: string[] | undefined } {
  const [text, ...back] = (args.map((a) => filter.push(SEPARATOR + a)).join("") + filter.end()).split(SEPARATOR);
  const ok = !filter.blocked && back.length === args.length;
  return { text: filter.blocked ? "" : text!, args: ok ? back : undefined };
}

/**
 * The Responses API's answer: every output_text part and every function call's arguments through one filter
 * (separated as above); a block empties the texts, drops the calls and marks the response incomplete
 * (content_filter), as OpenAI does.
 */
export function scanResponseOutput(answer: Obj, filter: TextFilter): void {
  const slots: { text: string; set: (v: string) => void }[] = [];
  const output = Array.isArray(answer.output) ? (answer.output as Obj[]) : [];
  for (const item of output) {
    if (item.type === "function_call" && typeof item.arguments === "string") slots.push({ text: item.arguments, set: (v) => { item.arguments = v; } });
    for (const part of Array.isArray(item.content) ? (item.content as Obj[]) : []) {
      if (typeof part.text === "string") slots.push({ text: part.text, set: (v) => { part.text = v; } });
    }
  }
  const back = (slots.map((x, i) => (i ? filter.push(SEPARATOR) : "") + filter.push(x.text)).join("") + filter.end()).split(SEPARATOR);
  const lost = back.length !== slots.length;
  if (filter.blocked || lost) {
    answer.output = output.filter((item) => item.type !== "function_call");
    for (const item of answer.output as Obj[]) for (const part of Array.isArray(item.content) ? (item.content as Obj[]) : []) if (typeof part.text === "string") part.text = "";
    answer.status = "incomplete";
    answer.incomplete_details = { reason: "content_filter" };
  } else slots.forEach((x, i) => x.set(back[i]!));
  if (typeof answer.output_text === "string") {
    answer.output_text = (answer.output as Obj[]).flatMap((item) => (Array.isArray(item.content) ? (item.content as Obj[]) : []))
      .filter((p) => p.type === "output_text").map((p) => p.text).join("");
  }
}
