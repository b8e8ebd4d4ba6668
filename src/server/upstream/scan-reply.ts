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

/** One generated string of an answer, with its writer. */
interface Field { value: string; set: (v: string) => void }
/** The scannable parts of one choice: its text and every other generated string field, and how to drop its calls. */
interface Parts { text: Field; others: Field[]; dropCalls: () => void }

const field = (o: Obj, key: string): Field[] => (typeof o[key] === "string" ? [{ value: o[key] as string, set: (v) => { o[key] = v; } }] : []);
const NO_TEXT: Field = { value: "", set: () => {} };

function chatParts(c: Obj): Parts {
  const m = (c.message ?? {}) as Obj;
  const calls = Array.isArray(m.tool_calls) ? (m.tool_calls as Obj[]) : [];
  const fn = m.function_call && typeof m.function_call === "object" ? (m.function_call as Obj) : undefined;
  return {
    text: field(m, "content")[0] ?? NO_TEXT,
    // Every string the model generated reaches the client: call arguments (also the legacy function_call), a
    // refusal, and the reasoning text vLLM and llama-server send beside the content.
    others: [...calls.flatMap((t) => (t.function && typeof t.function === "object" ? field(t.function as Obj, "arguments") : [])),
      ...(fn ? field(fn, "arguments") : []), ...field(m, "refusal"), ...field(m, "reasoning_content"), ...field(m, "reasoning")],
    dropCalls: () => { delete m.tool_calls; delete m.function_call; },
  };
}

function textParts(c: Obj): Parts {
  return { text: field(c, "text")[0] ?? NO_TEXT, others: [], dropCalls: () => {} };
}

/**
 * Scans `choices` of a chat or completions answer in place, each string through a filter of its own from `newFilter`:
 * through one filter, a match could run from one choice (or field) into the next and blank them all. A block empties
 * the choice and drops its calls. Where the scan changed anything, the choice's logprobs go (null): they spell the
 * upstream's tokens, the secret included.
 */
export function scanChoices(choices: Obj[], kind: "chat" | "completions", newFilter: () => TextFilter): void {
  for (const choice of choices) {
    const p = (kind === "chat" ? chatParts : textParts)(choice), all = [p.text, ...p.others];
    const { parts, blocked } = scanParts(all.map((f) => f.value), newFilter);
    all.forEach((f, i) => f.set(blocked ? "" : parts[i]!));
    if (blocked) { p.dropCalls(); choice.finish_reason = "content_filter"; }
    if ((blocked || all.some((f, i) => parts[i] !== f.value)) && choice.logprobs) choice.logprobs = null;
  }
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
 * arguments and each reasoning summary text go through a filter of their own. A block empties the texts, drops the calls and marks the response
 * incomplete (content_filter), as OpenAI does.
 */
export function scanResponseOutput(answer: Obj, newFilter: () => TextFilter): void {
  const texts: { text: string; set: (v: string) => void }[] = [], calls: typeof texts = [];
  const output = Array.isArray(answer.output) ? (answer.output as Obj[]) : [];
  for (const item of output) {
    if (item.type === "function_call" && typeof item.arguments === "string") calls.push({ text: item.arguments, set: (v) => { item.arguments = v; } });
    // A reasoning item's summary texts are generated text too, shown apart from the answer: each on its own.
    for (const part of Array.isArray(item.summary) ? (item.summary as Obj[]) : []) {
      if (typeof part.text === "string") calls.push({ text: part.text, set: (v) => { part.text = v; } });
    }
    for (const part of Array.isArray(item.content) ? (item.content as Obj[]) : []) {
      if (typeof part.text === "string") texts.push({ text: part.text, set: (v) => { part.text = v; } });
    }
  }
  const filter = newFilter();
  const back = texts.length ? filter.whole(texts.map((x) => x.text).join(PART_BORDER)).split(PART_BORDER) : [];
  const args = scanParts(calls.map((x) => x.text), newFilter);
  if (filter.blocked || args.blocked || back.length !== texts.length) {
    answer.output = output.filter((item) => item.type !== "function_call");
    for (const x of [...texts, ...calls]) x.set("");
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
