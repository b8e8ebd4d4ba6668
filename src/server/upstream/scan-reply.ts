/**
 * The response scanner over an upstream's non-streamed answer: every choice's
 * text and each tool call's arguments go through a response filter of its own
 * (guards/scan-parts.ts, as generate.ts does for local models) and are written
 * back; a block empties that choice and sets its finish_reason "content_filter".
 */
import type { TextFilter } from "../../guards/response-scan";
import { scanParts } from "../../guards/scan-parts";

type Obj = Record<string, unknown>;

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
    // So does every other string of the choice (its logprobs and finish_reason are read apart: scanChoices).
    others: [...allStrings(m, text ? ["content"] : []), ...allStrings(c, ["message", ...CHOICE_OWN])],
    dropCalls: () => { delete m.tool_calls; delete m.function_call; },
  };
}

/** A choice's own fields the scan of its other strings leaves out (read apart: scanChoices), besides its text. */
const CHOICE_OWN: readonly string[] = ["logprobs", "finish_reason"];

function textParts(c: Obj): Parts {
  const text = field(c, "text")[0];
  return { text: text ?? NO_TEXT, others: allStrings(c, text ? ["text", ...CHOICE_OWN] : CHOICE_OWN), dropCalls: () => {} };
}

/** The finish reasons of the API (the legacy function_call too); an upstream's other string is "stop", as relay.ts reads it. */
const REASONS: readonly string[] = ["stop", "length", "content_filter", "tool_calls", "function_call"];

/** Every string in `v`, and the keys of objects in a `top_logprobs` list (completions' alternatives are keyed by token). */
function stringsAndKeys(v: unknown, out: string[] = [], depth = 0, keyed = false): string[] {
  if (typeof v === "string") out.push(v);
  else if (v && typeof v === "object" && depth <= 64) {
    for (const [k, x] of Object.entries(v)) {
      if (keyed && !Array.isArray(v)) out.push(k);
      stringsAndKeys(x, out, depth + 1, Array.isArray(v) ? keyed : k === "top_logprobs");
    }
  }
  return out;
}

/**
 * Logprobs an upstream sent that the scanner would change: any token or alternative alone, or the text the chosen
 * tokens spell (chat's content[].token, a Responses part's list, completions' tokens). Kept only where the text they
 * go with was unchanged, they were sent as they came, though they need not spell that text (red-team run: a key in
 * them, "hi" as content).
 */
function logprobsScanned(lp: unknown, newFilter: () => TextFilter): boolean {
  const o = (lp && typeof lp === "object" ? lp : {}) as Obj;
  const list = Array.isArray(lp) ? (lp as Obj[]) : Array.isArray(o.content) ? (o.content as Obj[]) : undefined;
  const chosen = list ? list.map((t) => (t && typeof t.token === "string" ? t.token : ""))
    : Array.isArray(o.tokens) ? (o.tokens as unknown[]).map((t) => (typeof t === "string" ? t : "")) : [];
  // Each token and alternative on a line of its own: one filter for all of them (a long answer has thousands).
  return [chosen.join(""), stringsAndKeys(lp).join("\n")].some((text) => newFilter().whole(text) !== text);
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
    else if (!REASONS.includes(choice.finish_reason as string) && choice.finish_reason != null) choice.finish_reason = "stop";
    if (choice.logprobs && (blocked || all.some((f, i) => parts[i] !== f.value) || logprobsScanned(choice.logprobs, () => newFilter(false)))) choice.logprobs = null;
  }
}

/** Scans what is left at the end of a stream: held-back text plus the calls' arguments; the calls are dropped on a block. */
export function scanStreamEnd(filter: TextFilter, args: string[], newFilter: (index: number) => TextFilter): { text: string; args: string[] | undefined } {
  const text = filter.end(), scanned = scanParts(args, newFilter);
  const blocked = filter.blocked || scanned.blocked;
  return { text: blocked ? "" : text, args: blocked ? undefined : scanned.parts };
}

/**
 * The Responses API's answer. Its output_text parts are one text to a client (the SDKs' output_text joins them), so
 * each is scanned alone, then all of them (as scanned) joined as output_text joins them: a key inside one part is
 * found though joined it would run into the next part's first word, and a key split over two parts (or message items)
 * is found whole; one found only joined puts the whole scanned text in the first part and empties the rest. (Joined by
 * a separator no rule matched, a split key passed in halves; joined with nothing alone, a key before the next part's
 * word passed: red-team run, attack on that fix.) Every other string an item or part carries (a reasoning part's
 * text, a call's arguments, name and ids, a custom tool call's input, a refusal, a summary, a text that is not a
 * string; not its type, status or role) goes through a filter of its own. A part's logprobs go where its text changed
 * or where the scanner would change their tokens (they spell the upstream's tokens, the secret included). A block
 * empties the texts, drops the calls and marks the response incomplete (content_filter), as OpenAI does.
 */
export function scanResponseOutput(answer: Obj, newFilter: (text?: boolean, json?: boolean) => TextFilter, textJson = false): void {
  const texts: { part: Obj; text: string }[] = [], others: Field[] = [], withLogprobs: Obj[] = [];
  const output = Array.isArray(answer.output) ? (answer.output as Obj[]).filter((i) => !!i && typeof i === "object") : [];
  for (const item of output) {
    const parts = Array.isArray(item.content) ? (item.content as unknown[]) : undefined;
    others.push(...allStrings(item, parts ? ["content"] : [])); // a content that is a string is one more string
    for (const part of parts ?? []) {
      if (!part || typeof part !== "object") continue;
      const p = part as Obj;
      const joins = p.type === "output_text" && typeof p.text === "string"; // what output_text joins
      if (joins) texts.push({ part: p, text: p.text as string });
      others.push(...allStrings(p, joins ? ["text", "logprobs"] : ["logprobs"]));
      if (p.logprobs) withLogprobs.push(p);
    }
  }
  const alone = texts.map(() => newFilter(true, textJson));
  const apart = texts.map((x, i) => alone[i]!.whole(x.text));
  const filter = newFilter(true, textJson);
  const joined = apart.join("");
  const whole = filter.whole(joined);
  const back = whole === joined ? apart : texts.map((_, i) => (i === 0 ? whole : ""));
  const rest = scanParts(others.map((x) => x.value), (i) => newFilter(false, !!others[i]!.json));
  if (filter.blocked || rest.blocked || alone.some((f) => f.blocked)) {
    answer.output = output.filter((item) => item.type === "message" || item.type === "reasoning");
    for (const x of texts) x.part.text = "";
    for (const p of withLogprobs) p.logprobs = [];
    for (const x of others) x.set("");
    answer.status = "incomplete";
    answer.incomplete_details = { reason: "content_filter" };
  } else {
    const changed = new Set(texts.filter((x, i) => back[i] !== x.text).map((x) => x.part));
    for (const p of withLogprobs) if (changed.has(p) || logprobsScanned(p.logprobs, () => newFilter(false))) p.logprobs = [];
    texts.forEach((x, i) => { x.part.text = back[i]!; });
    others.forEach((x, i) => x.set(rest.parts[i]!));
  }
  if (typeof answer.output_text === "string") {
    answer.output_text = (answer.output as Obj[]).flatMap((item) => (Array.isArray(item.content) ? (item.content as Obj[]) : []))
      .filter((p) => p && p.type === "output_text" && typeof p.text === "string").map((p) => p.text).join("");
  }
}

/**
 * The answer's other strings (its id, a system_fingerprint, instructions, an error's message, any field an upstream
 * adds), each through a filter of its own; `skip`: the fields scanned as choices or output. A block empties them.
 */
export function scanAnswerRest(answer: Obj, skip: readonly string[], newFilter: () => TextFilter): void {
  const fields = allStrings(answer, skip);
  const { parts, blocked } = scanParts(fields.map((f) => f.value), () => newFilter());
  fields.forEach((f, i) => f.set(blocked ? "" : parts[i]!));
}

/** How deep an upstream's answer may nest: the depth every scan above reads strings to (allStrings). */
export const ANSWER_MAX_DEPTH = 64;
