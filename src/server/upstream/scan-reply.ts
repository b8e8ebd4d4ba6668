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

/** One generated string of an answer, with its writer; `json`: a call's arguments (JSON text). */
interface Field { value: string; set: (v: string) => void; json?: boolean }
/** The scannable parts of one choice: its text and every other generated string field, and how to drop its calls. */
interface Parts { text: Field; others: Field[]; dropCalls: () => void }

const field = (o: Obj, key: string): Field[] => (typeof o[key] === "string" ? [{ value: o[key] as string, set: (v) => { o[key] = v; } }] : []);
const NO_TEXT: Field = { value: "", set: () => {} };

/** Keys that hold the API's own words (an item's type, status, a message's role), never generated text. */
const STRUCTURAL: readonly string[] = ["type", "status", "role"];

/**
 * Every string in `root` at any depth (objects and arrays; 64 levels at most), but under STRUCTURAL keys and, at the
 * top level, `topSkip`: what an upstream may have filled with generated text (second fix-attack run: an annotation's
 * title, an audio transcript, reasoning details went out unscanned).
 */
function allStrings(root: Obj, topSkip: readonly string[] = []): Field[] {
  const out: Field[] = [];
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (!v || typeof v !== "object" || depth > 64) continue;
    if (Array.isArray(v)) {
      v.forEach((x, i) => { if (typeof x === "string") out.push({ value: x, set: (t) => { v[i] = t; } }); else stack.push([x, depth + 1]); });
      continue;
    }
    for (const [k, x] of Object.entries(v as Obj)) {
      if (STRUCTURAL.includes(k) || (depth === 0 && topSkip.includes(k))) continue;
      if (typeof x === "string") out.push({ value: x, set: (t) => { (v as Obj)[k] = t; }, ...(k === "arguments" && { json: true }) });
      else stack.push([x, depth + 1]);
    }
  }
  return out;
}

function chatParts(c: Obj): Parts {
  const m = (c.message ?? {}) as Obj;
  const text = field(m, "content")[0];
  return {
    text: text ?? NO_TEXT,
    // Every other string the message carries reaches the client: call arguments, names and ids (also the legacy
    // function_call; vLLM's tool parsers take a name from the model's text unchecked), a refusal, reasoning text,
    // list content's parts, annotations, an audio transcript… (leak run, second fix-attack run).
    others: allStrings(m, text ? ["content"] : []),
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
export function scanChoices(choices: Obj[], kind: "chat" | "completions", newFilter: (text?: boolean, json?: boolean) => TextFilter, textJson = false): void {
  for (const choice of choices) {
    const p = (kind === "chat" ? chatParts : textParts)(choice), all = [p.text, ...p.others];
    const { parts, blocked } = scanParts(all.map((f) => f.value), (i) => newFilter(i === 0, i === 0 ? textJson : !!all[i]!.json)); // part 0: the text
    all.forEach((f, i) => f.set(blocked ? "" : parts[i]!));
    if (blocked) { p.dropCalls(); choice.finish_reason = "content_filter"; }
    if ((blocked || all.some((f, i) => parts[i] !== f.value)) && choice.logprobs) choice.logprobs = null;
  }
}

/** Scans what is left at the end of a stream: held-back text plus the calls' arguments; the calls are dropped on a block. */
export function scanStreamEnd(filter: TextFilter, args: string[], newFilter: (index: number) => TextFilter): { text: string; args: string[] | undefined } {
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
export function scanResponseOutput(answer: Obj, newFilter: (text?: boolean, json?: boolean) => TextFilter, textJson = false): void {
  const texts: { part: Obj; text: string }[] = [], others: Field[] = [];
  const output = Array.isArray(answer.output) ? (answer.output as Obj[]).filter((i) => !!i && typeof i === "object") : [];
  for (const item of output) {
    others.push(...allStrings(item, ["content"]));
    for (const part of Array.isArray(item.content) ? (item.content as unknown[]) : []) {
      if (!part || typeof part !== "object") continue;
      const p = part as Obj;
      if (typeof p.text === "string") texts.push({ part: p, text: p.text });
      others.push(...allStrings(p, ["text", "logprobs"])); // logprobs: dropped below where the text changed
    }
  }
  const filter = newFilter(true, textJson);
  const back = texts.length ? filter.whole(texts.map((x) => x.text).join(PART_BORDER)).split(PART_BORDER) : [];
  const rest = scanParts(others.map((x) => x.value), (i) => newFilter(false, !!others[i]!.json));
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
