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

/** Every string field of `o` but those named in `skip` (what an upstream may have filled with generated text). */
const stringFields = (o: Obj, skip: readonly string[]): Field[] => Object.keys(o).filter((k) => !skip.includes(k)).flatMap((k) => field(o, k));

function chatParts(c: Obj): Parts {
  const m = (c.message ?? {}) as Obj;
  const calls = Array.isArray(m.tool_calls) ? (m.tool_calls as Obj[]) : [];
  const fn = m.function_call && typeof m.function_call === "object" ? (m.function_call as Obj) : undefined;
  // Content as a list of parts (a server may answer so): each part's text and refusal, each on its own.
  const parts = Array.isArray(m.content) ? (m.content as unknown[]).filter((p): p is Obj => !!p && typeof p === "object") : [];
  return {
    text: field(m, "content")[0] ?? NO_TEXT,
    // Every string the model generated reaches the client: call arguments and names (also the legacy function_call;
    // vLLM's tool parsers take a name from the model's text unchecked) and ids, a refusal, the reasoning text vLLM
    // and llama-server send beside the content, and list content's parts (leak run: names, ids and parts went out as sent).
    others: [...calls.flatMap((t) => [...field(t, "id"), ...(t.function && typeof t.function === "object" ? [...field(t.function as Obj, "arguments"), ...field(t.function as Obj, "name")] : [])]),
      ...(fn ? [...field(fn, "arguments"), ...field(fn, "name")] : []), ...field(m, "refusal"), ...field(m, "reasoning_content"), ...field(m, "reasoning"),
      ...parts.flatMap((p) => [...field(p, "text"), ...field(p, "refusal")])],
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
export function scanChoices(choices: Obj[], kind: "chat" | "completions", newFilter: (text?: boolean) => TextFilter): void {
  for (const choice of choices) {
    const p = (kind === "chat" ? chatParts : textParts)(choice), all = [p.text, ...p.others];
    const { parts, blocked } = scanParts(all.map((f) => f.value), (i) => newFilter(i === 0)); // part 0: the text
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
 * and blanks the answer, as a block does (a key split over two parts never leaves in pieces). Every other string an
 * item or part carries (a call's arguments, name and ids, a custom tool call's input, a refusal, a reasoning summary;
 * not its type, status or role) goes through a filter of its own. A text part the scan changed loses its logprobs
 * (they spell the upstream's tokens, the secret included). A block empties the texts, drops the calls and marks the
 * response incomplete (content_filter), as OpenAI does.
 */
export function scanResponseOutput(answer: Obj, newFilter: (text?: boolean) => TextFilter): void {
  const texts: { part: Obj; text: string }[] = [], others: Field[] = [];
  const output = Array.isArray(answer.output) ? (answer.output as Obj[]).filter((i) => !!i && typeof i === "object") : [];
  const structural = ["type", "status", "role"] as const;
  for (const item of output) {
    others.push(...stringFields(item, structural));
    for (const part of Array.isArray(item.summary) ? (item.summary as Obj[]) : []) if (part && typeof part === "object") others.push(...stringFields(part, structural));
    for (const part of Array.isArray(item.content) ? (item.content as Obj[]) : []) {
      if (!part || typeof part !== "object") continue;
      if (typeof part.text === "string") texts.push({ part, text: part.text });
      others.push(...stringFields(part, [...structural, "text"]));
    }
  }
  const filter = newFilter(true);
  const back = texts.length ? filter.whole(texts.map((x) => x.text).join(PART_BORDER)).split(PART_BORDER) : [];
  const rest = scanParts(others.map((x) => x.value), () => newFilter());
  if (filter.blocked || rest.blocked || back.length !== texts.length) {
    answer.output = output.filter((item) => item.type === "message" || item.type === "reasoning");
    for (const x of texts) { x.part.text = ""; if (x.part.logprobs) x.part.logprobs = []; }
    for (const x of others) x.set("");
    answer.status = "incomplete";
    answer.incomplete_details = { reason: "content_filter" };
  } else {
    texts.forEach((x, i) => {
      if (back[i] === x.text) return;
      x.part.text = back[i]!;
      if (x.part.logprobs) x.part.logprobs = [];
    });
    others.forEach((x, i) => x.set(rest.parts[i]!));
  }
  if (typeof answer.output_text === "string") {
    answer.output_text = (answer.output as Obj[]).flatMap((item) => (Array.isArray(item.content) ? (item.content as Obj[]) : []))
      .filter((p) => p.type === "output_text").map((p) => p.text).join("");
  }
}
