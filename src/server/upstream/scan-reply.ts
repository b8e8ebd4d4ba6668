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
function allStrings(root: Obj, topSkip: readonly string[] = [], skip: readonly string[] = STRUCTURAL): Field[] {
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
      if (skip.includes(k) || (depth === 0 && topSkip.includes(k))) continue;
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
 * The texts a logprobs value's chosen tokens spell: one per list of them (chat's content and refusal lists, each
 * Responses part's, completions' `tokens`), every `token` outside `top_logprobs`, from its `bytes` where it has them
 * (OpenAI tells clients to decode those).
 */
function spelled(lp: unknown, out: string[] = [], depth = 0): string[] {
  if (!lp || typeof lp !== "object" || depth > 64) return out;
  const tokenOf = (t: unknown) => {
    if (typeof t === "string") return t;
    const o = (t && typeof t === "object" ? t : {}) as Obj;
    const bytes = o.bytes;
    if (Array.isArray(bytes) && bytes.length && bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) return Buffer.from(bytes as number[]).toString("utf8");
    return typeof o.token === "string" ? o.token : "";
  };
  if (Array.isArray(lp)) {
    if (lp.some((t) => t && typeof t === "object" && "token" in t)) out.push(lp.map(tokenOf).join(""));
    else for (const x of lp) spelled(x, out, depth + 1);
    return out;
  }
  for (const [k, x] of Object.entries(lp as Obj)) {
    if (k === "top_logprobs") continue;
    if (k === "tokens" && Array.isArray(x)) out.push(x.map(tokenOf).join(""));
    else spelled(x, out, depth + 1);
  }
  return out;
}

/**
 * Logprobs an upstream sent that the scanner would change: a text their chosen tokens spell, each list alone and all
 * together (a key split over two lists), or any token or alternative alone. Kept only where the text they go with was
 * unchanged, they were sent as they came, though they need not spell that text (red-team run: a key in them, "hi" as
 * content).
 */
function logprobsScanned(lp: unknown, newFilter: () => TextFilter): boolean {
  const lists = spelled(lp);
  // Each token and alternative on a line of its own: one filter for all of them (a long answer has thousands).
  return [...lists, lists.join(""), stringsAndKeys(lp).join("\n")].some((text) => newFilter().whole(text) !== text);
}

/**
 * Texts a client joins (a Responses answer's output_text parts, chat's list content): `raw` as the upstream sent them,
 * `apart` each scanned alone. Joined raw, a key split over two of them is found whole (a PEM key's BEGIN line in one
 * and its body in the next too); alone, one at a part's end is found though joined it would run into the next part's
 * word. What is sent: `apart` where the joined scan finds nothing more; the joined scan's text in the first (the
 * others emptied) where only it found something; nothing, as a block, where both found something and they differ (a
 * finding across a border beside one within a part). Scanned with a separator between them, a split key passed in
 * halves; joined with nothing alone, a key before the next part's word passed (red-team run, attacks on the fixes).
 */
function joinedTexts(raw: string[], apart: string[], newFilter: () => TextFilter): { back: string[]; blocked: boolean } {
  const filter = newFilter();
  const joined = raw.join(""), whole = filter.whole(joined);
  if (filter.blocked) return { back: raw.map(() => ""), blocked: true };
  if (whole === joined || whole === apart.join("")) return { back: apart, blocked: false };
  if (apart.every((t, i) => t === raw[i])) return { back: raw.map((_, i) => (i === 0 ? whole : "")), blocked: false };
  return { back: raw.map(() => ""), blocked: true };
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
    const listRaw = kind === "chat" ? listTexts(choice).map((x) => x.text as string) : [];
    const { parts, blocked } = scanParts(all.map((f) => f.value), (i) => newFilter(i === 0, i === 0 ? textJson : !!all[i]!.json)); // part 0: the text
    all.forEach((f, i) => f.set(blocked ? "" : parts[i]!));
    if (blocked) { p.dropCalls(); choice.finish_reason = "content_filter"; }
    else if (!REASONS.includes(choice.finish_reason as string) && choice.finish_reason != null) choice.finish_reason = "stop";
    const joined = blocked ? undefined : joinListContent(choice, listRaw, () => newFilter(true, textJson));
    if (joined?.blocked) { all.forEach((f) => f.set("")); p.dropCalls(); choice.finish_reason = "content_filter"; }
    if (choice.logprobs && (blocked || joined || all.some((f, i) => parts[i] !== f.value) || logprobsScanned(choice.logprobs, () => newFilter(false)))) choice.logprobs = null;
  }
}

/** A chat message's list content's text parts (a client joins them). */
function listTexts(choice: Obj): Obj[] {
  const m = choice.message;
  if (!m || typeof m !== "object" || !Array.isArray((m as Obj).content)) return [];
  return ((m as Obj).content as unknown[]).filter((p): p is Obj => !!p && typeof p === "object" && typeof (p as Obj).text === "string");
}

/** A chat message's list content read joined (joinedTexts; `raw`: its texts before the scan): what changed, or undefined. */
function joinListContent(choice: Obj, raw: string[], newFilter: () => TextFilter): { blocked: boolean } | undefined {
  const parts = listTexts(choice);
  if (parts.length < 2 || parts.length !== raw.length) return undefined;
  const apart = parts.map((p) => p.text as string);
  const { back, blocked } = joinedTexts(raw, apart, newFilter);
  if (!blocked && back.every((t, i) => t === apart[i])) return undefined;
  parts.forEach((p, i) => { p.text = blocked ? "" : back[i]!; });
  return { blocked };
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
      const joins = (p.type === "output_text" || p.type === "text") && typeof p.text === "string"; // what a client joins
      if (joins) texts.push({ part: p, text: p.text as string });
      others.push(...allStrings(p, joins ? ["text", "logprobs"] : ["logprobs"]));
      if (p.logprobs) withLogprobs.push(p);
    }
  }
  const alone = texts.map(() => newFilter(true, textJson));
  const apart = texts.map((x, i) => alone[i]!.whole(x.text));
  const { back, blocked } = joinedTexts(texts.map((x) => x.text), apart, () => newFilter(true, textJson));
  const rest = scanParts(others.map((x) => x.value), (i) => newFilter(false, !!others[i]!.json));
  if (blocked || rest.blocked || alone.some((f) => f.blocked)) {
    answer.output = output.filter((item) => item.type === "message" || item.type === "reasoning");
    for (const x of texts) x.part.text = "";
    for (const p of withLogprobs) p.logprobs = [];
    for (const x of others) x.set("");
    answer.status = "incomplete";
    answer.incomplete_details = { reason: "content_filter" };
  } else {
    // Every part's logprobs go where any text changed or their tokens, read together over all parts, would change.
    const changed = texts.some((x, i) => back[i] !== x.text) || logprobsScanned(withLogprobs.map((p) => p.logprobs), () => newFilter(false));
    for (const p of withLogprobs) if (changed) p.logprobs = [];
    texts.forEach((x, i) => { x.part.text = back[i]!; });
    others.forEach((x, i) => x.set(rest.parts[i]!));
  }
  if (typeof answer.output_text === "string") {
    answer.output_text = (answer.output as Obj[]).flatMap((item) => (Array.isArray(item.content) ? (item.content as Obj[]) : []))
      .filter((p) => p && p.type === "output_text" && typeof p.text === "string").map((p) => p.text).join("");
  }
}

/**
 * Every string of the answer, each through a filter of its own, after the scans above (which read texts and calls as
 * the API means them): whatever field or shape an upstream puts a string in (usage, an embedding's entry, a choice's
 * message that is a string, output that is not a list…), it is read; an embedding's values are not (numbers, or
 * base64 of them). Strings the scans above wrote are read again and stay as they are. A block empties them.
 */
export function scanEveryString(answer: Obj, newFilter: () => TextFilter): void {
  const fields = allStrings(answer, [], [...STRUCTURAL, "embedding"]);
  const { parts, blocked } = scanParts(fields.map((f) => f.value), () => newFilter());
  fields.forEach((f, i) => f.set(blocked ? "" : parts[i]!));
}

/**
 * The usage fields of the APIs (chat, completions, Responses, embeddings): the only names an upstream's usage is passed
 * on under. Its keys are not read by the scanner, and any name went out (`{"AKIA…": 7}` in a streamed usage chunk;
 * gateway red-team run).
 */
const USAGE_COUNTS = new Set(["prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens",
  "cached_tokens", "cache_write_tokens", "audio_tokens", "reasoning_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens", "text_tokens", "image_tokens"]);
const USAGE_DETAILS = new Set(["prompt_tokens_details", "completion_tokens_details", "input_tokens_details", "output_tokens_details"]);

/**
 * An upstream's usage with only what it may hold: the API's counts (finite, not negative; whole numbers) and its
 * details objects of them; any other name is dropped.
 */
export function usageCounts(usage: unknown, depth = 0): Obj | undefined {
  if (!usage || typeof usage !== "object" || Array.isArray(usage) || depth > 1) return undefined;
  const out: Obj = {};
  for (const [k, v] of Object.entries(usage as Obj)) {
    if (USAGE_COUNTS.has(k) && typeof v === "number" && Number.isFinite(v) && v >= 0) out[k] = Math.floor(v);
    else if (depth === 0 && USAGE_DETAILS.has(k) && v && typeof v === "object") { const inner = usageCounts(v, 1); if (inner) out[k] = inner; }
  }
  return out;
}

/** How deep an upstream's answer may nest: the depth every scan above reads strings to (allStrings). */
export const ANSWER_MAX_DEPTH = 64;
