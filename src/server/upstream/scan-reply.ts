/**
 * The response scanner over an upstream's non-streamed answer: every choice's
 * text and each tool call's arguments go through a response filter of its own
 * (guards/scan-parts.ts, as generate.ts does for local models) and are written
 * back; a block empties that choice and sets its finish_reason "content_filter".
 */
import type { TextFilter } from "../../guards/response-scan";
import { scanParts } from "../../guards/scan-parts";

type Obj = Record<string, unknown>;
/** Between a Responses answer's text parts while they are scanned as one text (no rule matches it whole). */
const PART_BORDER = "\u0000\u241Fpart\u241F\u0000";

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
    const p = (kind === "chat" ? chatParts : textParts)(choice);
    const { parts: [text, ...args], blocked } = scanParts([p.text, ...p.args], newFilter);
    p.write(blocked ? "" : text!, blocked ? undefined : args);
    if (blocked) choices[i]!.finish_reason = "content_filter";
  });
}

/** Scans what is left at the end of a stream: held-back text plus the calls' arguments; the calls are dropped on a block. */
export function scanStreamEnd(filter: TextFilter, args: string[], newFilter: () => TextFilter): { text: string; args: string[] | undefined } {
  const text = filter.end(), scanned = scanParts(args, newFilter);
  const blocked = filter.blocked || scanned.blocked;
  return { text: blocked ? "" : text, args: blocked ? undefined : scanned.parts };
}

/**
 * The Responses API's answer. Its text parts are one text to a client (the SDKs' output_text joins them), so they go
 * through one filter, joined by a separator no rule matches; a finding that runs across a part border swallows it
 * and blanks the answer, as a block does (a key split over two parts never leaves in pieces). Each function call's
 * arguments go through a filter of their own. A block empties the texts, drops the calls and marks the response
 * incomplete (content_filter), as OpenAI does.
 */
export function scanResponseOutput(answer: Obj, newFilter: () => TextFilter): void {
  const texts: { text: string; set: (v: string) => void }[] = [], calls: typeof texts = [];
  const output = Array.isArray(answer.output) ? (answer.output as Obj[]) : [];
  for (const item of output) {
    if (item.type === "function_call" && typeof item.arguments === "string") calls.push({ text: item.arguments, set: (v) => { item.arguments = v; } });
    for (const part of Array.isArray(item.content) ? (item.content as Obj[]) : []) {
      if (typeof part.text === "string") texts.push({ text: part.text, set: (v) => { part.text = v; } });
    }
  }
  const filter = newFilter();
  const back = texts.length ? filter.whole(texts.map((x) => x.text).join(PART_BORDER)).split(PART_BORDER) : [];
  const args = scanParts(calls.map((x) => x.text), newFilter);
  if (filter.blocked || args.blocked || back.length !== texts.length) {
    answer.output = output.filter((item) => item.type !== "function_call");
    for (const item of answer.output as Obj[]) for (const part of Array.isArray(item.content) ? (item.content as Obj[]) : []) if (typeof part.text === "string") part.text = "";
    answer.status = "incomplete";
    answer.incomplete_details = { reason: "content_filter" };
  } else {
    texts.forEach((x, i) => x.set(back[i]!));
    calls.forEach((x, i) => x.set(args.parts[i]!));
  }
  if (typeof answer.output_text === "string") {
    answer.output_text = (answer.output as Obj[]).flatMap((item) => (Array.isArray(item.content) ? (item.content as Obj[]) : []))
      .filter((p) => p.type === "output_text").map((p) => p.text).join("");
  }
}
