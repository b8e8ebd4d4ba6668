/**
 * The prompt guard over a request bound for an upstream. The body is forwarded
 * in its wire form (the upstream speaks OpenAI), so the guard reads every text
 * in it that a chat template renders into the prompt — message contents and
 * text parts, echoed thoughts, tool definitions, earlier calls' names and arguments — the same texts
 * guard-chat.ts reads for local models, and a "strip" rule's edits are written
 * back in place. Returns a copy; the validated body is left alone.
 */
import type { ChatTurn } from "../../engine/engine";
import { isObject } from "../../util/is-object";
import type { AppDeps } from "../deps";
import type { RequestState } from "../request-state";
import { decodedJson } from "../../guards/decoded-json";

type Obj = Record<string, unknown>;
interface Slot { text: string; set: (v: string) => void; role: ChatTurn["role"] }

/** A string field of `o` as a slot. */
function field(slots: Slot[], o: Obj, key: string, role: ChatTurn["role"]) {
  if (typeof o[key] === "string") slots.push({ text: o[key] as string, role, set: (v) => { o[key] = v; } });
}

/**
 * A content that is a string or an array of parts with text in `text` (or `refusal`), and an echoed thought beside it
 * (`reasoning_content`/`reasoning` on the message or, as the Agents SDK sends it back, on a text part): an upstream's
 * template renders it into the prompt, and it went up unguarded and unbounded (a fix-attack run: control tokens too).
 */
function content(slots: Slot[], o: Obj, role: ChatTurn["role"]) {
  const thought = (x: Obj) => { field(slots, x, "reasoning_content", role); field(slots, x, "reasoning", role); };
  thought(o);
  if (typeof o.content === "string") return field(slots, o, "content", role);
  if (!Array.isArray(o.content)) return;
  const parts = o.content;
  for (const p of parts) if (isObject(p)) thought(p);
  textParts(slots, parts, role);
  // A field named text or refusal on a part of another type (an image's caption) is read apart: not what is joined.
  for (const p of parts) if (isObject(p) && !TEXT_PART.has(p.type as string)) { field(slots, p, "text", role); field(slots, p, "refusal", role); }
}

/** The parts whose text a template joins: text (and Responses' input and output text) and refusal parts. */
const TEXT_PART = new Set(["text", "input_text", "output_text", "refusal"]);
const partText = (p: Obj) => (p.type === "refusal" ? p.refusal : p.text);

/**
 * A message's text and refusal parts as one slot, joined with a newline as the upstream's template reads them (vLLM and
 * llama-server join them so; local models are guarded the same way, convert.ts): read part by part, a phrase split
 * across two parts passed; a refusal part beside a text part was read apart (attack on the fix). A strip's result
 * goes in the first of them and the others go (the images between them keep their order after it).
 */
function textParts(slots: Slot[], parts: unknown[], role: ChatTurn["role"]) {
  const texts = parts.filter((p): p is Obj => isObject(p) && TEXT_PART.has(p.type as string) && typeof partText(p) === "string");
  if (texts.length === 0) return;
  slots.push({ text: texts.map((p) => partText(p) as string).join("\n"), role, set: (v) => {
    if (texts[0]!.type === "refusal") texts[0]!.refusal = v; else texts[0]!.text = v;
    for (const p of texts.slice(1)) parts.splice(parts.indexOf(p), 1);
  } });
}

/** Tool definitions: description and the parameters schema (as JSON text, parsed back after a strip). */
function tools(slots: Slot[], list: unknown) {
  if (!Array.isArray(list)) return;
  for (const t of list) {
    const f = isObject(t) && isObject(t.function) ? t.function : isObject(t) ? t : undefined; // chat nests under function; responses does not
    if (!f) continue;
    field(slots, f, "description", "system");
    if (isObject(f.parameters)) {
      slots.push({ text: JSON.stringify(f.parameters), role: "system", set: (v) => { try { f.parameters = JSON.parse(v); } catch { /* a strip broke it: keep it */ } } });
    }
  }
}

/** An earlier call: its name and arguments (read decoded, as the upstream's template writes them). */
function call(slots: Slot[], c: Obj) {
  field(slots, c, "name", "assistant");
  if (typeof c.arguments === "string") slots.push({ text: decodedJson(c.arguments), role: "assistant", set: (v) => { c.arguments = v; } });
}

function chatSlots(body: Obj): Slot[] {
  const slots: Slot[] = [];
  for (const m of body.messages as Obj[]) {
    const role = (m.role === "developer" ? "system" : m.role === "function" ? "tool" : m.role) as ChatTurn["role"];
    content(slots, m, role);
    // An earlier call's name is rendered beside its arguments: both are prompt text.
    for (const c of Array.isArray(m.tool_calls) ? m.tool_calls : []) if (isObject(c) && isObject(c.function)) call(slots, c.function);
    if (isObject(m.function_call)) call(slots, m.function_call);
  }
  tools(slots, body.tools);
  return slots;
}

function responsesSlots(body: Obj): Slot[] {
  const slots: Slot[] = [];
  field(slots, body, "instructions", "system");
  if (typeof body.input === "string") field(slots, body, "input", "user");
  else for (const item of body.input as Obj[]) {
    if (!isObject(item)) continue;
    content(slots, item, item.role === "assistant" ? "assistant" : item.role === "user" ? "user" : "system");
    if (item.type === "function_call") call(slots, item);
    if (typeof item.output === "string") field(slots, item, "output", "tool");
    else if (Array.isArray(item.output)) for (const p of item.output) if (isObject(p)) field(slots, p, "text", "tool");
  }
  tools(slots, body.tools);
  return slots;
}

/** The prompts of a completions body, each a text or token ids (OpenAI: string | string[] | number[] | number[][]). */
export function promptList(prompt: unknown): (string | number[])[] {
  if (typeof prompt === "string") return [prompt];
  const list = prompt as unknown[];
  return (typeof list[0] === "number" ? [list] : list) as (string | number[])[];
}

/**
 * prompt (completions) or input (embeddings): a string or strings. Token-id prompts are read as `tokenTexts`
 * (what the upstream detokenized them to) and replaced by the guarded text only where the guard changed it;
 * without tokenTexts they are not read (embeddings, or gateway.tokenPrompts "forward").
 */
function listSlots(body: Obj, key: "prompt" | "input", tokenTexts?: (string | undefined)[]): Slot[] {
  const v = body[key];
  if (typeof v === "string") return [{ text: v, role: "user", set: (s) => { body[key] = s; } }];
  const list = v as unknown[];
  const single = typeof list[0] === "number";
  const items = single ? [list] : list;
  const slots: Slot[] = [];
  items.forEach((item, i) => {
    const set = (s: string) => { if (single) body[key] = s; else list[i] = s; };
    if (typeof item === "string") slots.push({ text: item, role: "user", set });
    else if (key === "prompt" && tokenTexts?.[i] !== undefined) slots.push({ text: tokenTexts[i]!, role: "user", set });
  });
  return slots;
}

/**
 * How many messages a body holds, for `maxMessages`: chat's messages, the Responses API's input items (and its
 * instructions), as the local routes count them; a slot is a text part, a tool definition or call argument.
 */
function messageCount(body: Obj, route: UpstreamRoute, slots: number): number {
  if (route === "chat" && Array.isArray(body.messages)) return body.messages.length;
  if (route === "responses") return (typeof body.instructions === "string" ? 1 : 0) + (Array.isArray(body.input) ? body.input.length : 1);
  if (route === "embeddings") return 0; // inputs, bounded by maxEmbeddingInputs (forward.ts), not messages
  return slots;
}

export type UpstreamRoute = "chat" | "completions" | "embeddings" | "responses";

export function guardUpstreamBody(deps: AppDeps, state: RequestState, model: string, route: UpstreamRoute, body: unknown,
  tokenTexts?: (string | undefined)[]): Obj {
  // The body came from JSON, so a JSON round trip copies it exactly; structuredClone took ~30 µs per request here.
  const copy = JSON.parse(JSON.stringify(body)) as Obj;
  // Accepted for SDK compatibility and never used (wire.ts): the client's end-user id and tags stay here.
  for (const k of ["user", "metadata", "store", "service_tier"]) delete copy[k];
  const slots = route === "chat" ? chatSlots(copy) : route === "responses" ? responsesSlots(copy)
    : listSlots(copy, route === "completions" ? "prompt" : "input", tokenTexts);
  const guarded = deps.promptGuard(state, model, slots.map((s) => ({ role: s.role, content: s.text })), messageCount(copy, route, slots.length),
    route === "chat" ? "messages" : route === "completions" ? "prompt" : "input");
  guarded.forEach((t, i) => { if (t.content !== slots[i]!.text) slots[i]!.set(t.content); });
  return copy;
}
