/**
 * The Responses API on top of the chat engine call: request → turns, tools and
 * sampling (through the chat converters, so both APIs behave alike), and the
 * engine's Generation → a response object or its stream of named events.
 * Stateless: nothing is stored, so `previous_response_id` is refused.
 */
import { InvalidRequestError } from "../../errors";
import { checkEmbeddedJson, type JsonBounds } from "../../guards/json-shape";
import type { ChatTurn, Generation, TokenLogprob, ToolCall } from "../../engine/engine";
import { logprobEntries, spelled } from "./logprob-wire";
import { checkArguments, PART_SEPARATOR } from "./convert";
import type { ResponsesRequest } from "./responses-wire";
import type { ChatCompletionRequest } from "./wire";

const randomId = (prefix: string) => prefix + Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("hex");

/** The request in chat-completions terms, for toSampling and toToolUse. */
export function asChatRequest(req: ResponsesRequest): ChatCompletionRequest {
  if (req.previous_response_id) {
    throw new InvalidRequestError("This server does not store responses: send the whole conversation in 'input' instead of previous_response_id.",
      "previous_response_id", "unsupported_parameter");
  }
  if (req.conversation) {
    throw new InvalidRequestError("This server does not store conversations: send the whole conversation in 'input' instead of conversation.",
      "conversation", "unsupported_parameter");
  }
  const f = req.text?.format;
  return {
    model: req.model,
    messages: [],
    max_tokens: req.max_output_tokens,
    temperature: req.temperature,
    top_p: req.top_p,
    response_format: !f || f.type !== "json_schema" ? f
      : { type: "json_schema", json_schema: { name: f.name, schema: f.schema, description: f.description, strict: f.strict } },
    tools: req.tools?.map((t) => ({
      type: "function" as const,
      function: { name: t.name, description: t.description ?? undefined, parameters: t.parameters ?? undefined },
    })),
    tool_choice: chatToolChoice(req.tool_choice),
    parallel_tool_calls: req.parallel_tool_calls,
    ...(wantsLogprobs(req) && { logprobs: true, top_logprobs: req.top_logprobs ?? 0 }),
    ...(req.reasoning?.effort === "none" && { reasoning_effort: "none" as const }),
  };
}

/** A Responses tool_choice in the chat API's shape (a function is named inside `function` there). */
function chatToolChoice(choice: ResponsesRequest["tool_choice"]): ChatCompletionRequest["tool_choice"] {
  const named = (name: string) => ({ type: "function" as const, function: { name } });
  if (typeof choice !== "object" || !choice) return choice;
  if (choice.type === "function") return named(choice.name);
  return { type: "allowed_tools", allowed_tools: { mode: choice.mode, tools: choice.tools.map((t) => named(t.name)) } };
}

/** Logprobs are asked for by include (what the SDKs send) or by top_logprobs alone. */
const wantsLogprobs = (req: ResponsesRequest) => !!req.include?.includes("message.output_text.logprobs") || req.top_logprobs != null;

/** A reasoning item's thought as this server gives it (reasoning_text content; a summary is not the thought). */
function reasoningText(item: { content?: unknown }): string {
  const parts = Array.isArray(item.content) ? item.content as { type?: unknown; text?: unknown }[] : [];
  return parts.filter((p) => p?.type === "reasoning_text" && typeof p.text === "string").map((p) => p.text as string).join("");
}

/**
 * instructions + input → engine turns; a function_call_output must answer an earlier function_call. A reasoning
 * item's thought goes with the assistant turn after it (a message or calls), as chat's reasoning_content does.
 */
export function responsesTurns(req: ResponsesRequest, bounds: JsonBounds): ChatTurn[] {
  const turns: ChatTurn[] = req.instructions ? [{ role: "system", content: req.instructions }] : [];
  if (typeof req.input === "string") return [...turns, { role: "user", content: req.input }];
  const calls = new Set<string>();
  let thought = "";
  const withThought = () => { const t = thought; thought = ""; return t ? { reasoning: t } : {}; };
  req.input.forEach((item, i) => {
    if (item.type === "reasoning") { thought += reasoningText(item as { content?: unknown }); return; }
    if (item.type === "item_reference") {
      throw new InvalidRequestError("item_reference points at a stored item, and this server stores nothing: send the item itself " +
        "(AI SDK: providerOptions.openai.store = false).", `input.${i}`, "unsupported_parameter");
    }
    if (item.type === "function_call") {
      const call: ToolCall = { id: item.call_id, name: item.name, arguments: item.arguments };
      checkArguments(item.arguments, `input.${i}.arguments`, bounds, "Function");
      calls.add(item.call_id);
      const last = turns.at(-1);
      if (last?.role === "assistant" && !thought) (last.toolCalls ??= []).push(call);
      else turns.push({ role: "assistant", content: "", toolCalls: [call], ...withThought() });
      return;
    }
    if (item.type === "function_call_output") {
      if (!calls.has(item.call_id)) {
        throw new InvalidRequestError(`input[${i}] answers call '${item.call_id}', which no earlier function_call made.`, `input.${i}.call_id`);
      }
      if (typeof item.output !== "string") {
        const bad = item.output.findIndex((p) => p.type !== "input_text");
        if (bad >= 0) {
          throw new InvalidRequestError(`This server's models read text only: '${item.output[bad]!.type}' content is not supported.`,
            `input.${i}.output.${bad}`, "unsupported_content");
        }
      }
      const output = typeof item.output === "string" ? item.output : item.output.map((p) => ("text" in p ? String(p.text) : "")).join(PART_SEPARATOR);
      checkEmbeddedJson(output, bounds, `input.${i}.output`);
      turns.push({ role: "tool", content: output, toolCallId: item.call_id });
      return;
    }
    const m = item as Extract<typeof item, { role: string }>;
    let content: string;
    if (typeof m.content === "string") content = m.content;
    else {
      const bad = m.content.findIndex((p) => !["input_text", "output_text", "refusal"].includes(p.type));
      if (bad >= 0) {
        throw new InvalidRequestError(`This server's models read text only: '${m.content[bad]!.type}' content is not supported.`,
          `input.${i}.content.${bad}`, "unsupported_content");
      }
      content = m.content.map((p) => ("text" in p ? String(p.text) : "refusal" in p ? String(p.refusal) : "")).join(PART_SEPARATOR);
    }
    const said = m.role === "assistant" ? withThought() : (thought = "", {});
    turns.push({ role: m.role === "developer" ? "system" : m.role, content, ...said });
  });
  return turns;
}

/** Echoed request fields and ids that stay the same through a stream. */
export interface ResponseFrame {
  id: string;
  model: string;
  createdAt: number;
  req: ResponsesRequest;
}

export const newFrame = (id: string, model: string, createdAt: number, req: ResponsesRequest): ResponseFrame => ({ id, model, createdAt, req });

type Entries = ReturnType<typeof logprobEntries>;
const outputTextPart = (text: string, logprobs: Entries = []) => ({ type: "output_text" as const, text, annotations: [] as unknown[], logprobs });

/** "incomplete": the answer was cut (max_output_tokens, the content filter), as OpenAI marks the message of an incomplete response. */
function messageItem(id: string, text: string, status: "in_progress" | "completed" | "incomplete", logprobs?: Entries) {
  return { type: "message" as const, id, status, role: "assistant" as const, content: status === "in_progress" ? [] : [outputTextPart(text, logprobs)] };
}

const messageStatus = (g: Generation) => (incomplete(g) ? "incomplete" as const : "completed" as const);

/** The answer's logprobs while their tokens spell its text (generate.ts lines them up with the text as sent). */
const answerLogprobs = (g: Generation): Entries =>
  (spelled(g.logprobs, g.text) ? logprobEntries(g.logprobs!) : []);

function callItem(c: ToolCall, status: "in_progress" | "completed") {
  return { type: "function_call" as const, id: "fc_" + c.id.replace(/^call_/, ""), call_id: c.id, name: c.name,
    arguments: status === "completed" ? c.arguments : "", status };
}

/** A reasoning model's thought as OpenAI's Responses API gives an open-weight model's: reasoning text, no summary. */
function reasoningItem(id: string, text: string, status: "in_progress" | "completed") {
  return { type: "reasoning" as const, id, summary: [] as unknown[], content: status === "in_progress" ? [] : [{ type: "reasoning_text" as const, text }], status };
}

const incomplete = (g: Generation) =>
  g.finishReason === "length" ? { reason: "max_output_tokens" } : g.finishReason === "content_filter" ? { reason: "content_filter" } : null;

/** The response object; `g` undefined while a stream is starting. `logprobs`: the streamed ones (default: from `g`). */
export function responseObject(f: ResponseFrame, g: Generation | undefined, messageId: string, logprobs?: Entries, reasoningId = randomId("rs_")) {
  const status = !g ? "in_progress" : messageStatus(g);
  const output = !g ? [] : [
    ...(g.reasoning ? [reasoningItem(reasoningId, g.reasoning, "completed")] : []),
    ...(g.text || !g.toolCalls?.length ? [messageItem(messageId, g.text, messageStatus(g), logprobs ?? answerLogprobs(g))] : []),
    ...(g.toolCalls ?? []).map((c) => callItem(c, "completed")),
  ];
  const r = f.req;
  return {
    id: f.id, object: "response" as const, created_at: f.createdAt, status, model: f.model, output,
    error: null, incomplete_details: g ? incomplete(g) : null,
    instructions: r.instructions ?? null, max_output_tokens: r.max_output_tokens ?? null,
    parallel_tool_calls: r.parallel_tool_calls ?? true, previous_response_id: null, reasoning: { effort: null, summary: null },
    store: false, temperature: r.temperature ?? 1, top_p: r.top_p ?? 1,
    text: { format: r.text?.format ?? { type: "text" }, verbosity: r.text?.verbosity ?? "medium" },
    // what is applied: input longer than the context is a 400 here, never cut ("auto" is accepted, README says so)
    // A function tool's `strict` as applied, OpenAI's default (true) where it was left out: the SDK's type requires it.
    tool_choice: r.tool_choice ?? "auto", tools: (r.tools ?? []).map((t) => ({ ...t, strict: t.strict ?? true })), truncation: "disabled", metadata: r.metadata ?? {},
    usage: g ? {
      // cache_write_tokens: no cache is written on request (the SDK's type requires the field)
      input_tokens: g.promptTokens, input_tokens_details: { cached_tokens: g.cachedTokens ?? 0, cache_write_tokens: 0 },
      output_tokens: g.completionTokens, output_tokens_details: { reasoning_tokens: g.reasoningTokens ?? 0 },
      total_tokens: g.promptTokens + g.completionTokens,
    } : null,
  };
}

/**
 * The stream's named events, in OpenAI's order. A reasoning model's thought is the first item (reasoning text), the
 * message item opens at the first text (a forced tool call has none), function calls follow it, then
 * `response.completed` (or `.incomplete`).
 */
export function responseEvents(f: ResponseFrame) {
  let seq = 0, text = "", thought = "", opened = false, thinking = false, thoughtItems = 0;
  const logprobs: Entries = [];
  const messageId = randomId("msg_"), reasoningId = randomId("rs_");
  const ev = <T extends object>(type: string, body: T) => ({ type, sequence_number: seq++, ...body });
  const part = () => ({ item_id: messageId, output_index: thoughtItems, content_index: 0 });
  const thoughtPart = { item_id: reasoningId, output_index: 0, content_index: 0 };
  /** The reasoning item's closing events, once it is over (the answer starts, or the end). */
  const thoughtDone = () => {
    if (!thinking) return [];
    thinking = false;
    return [ev("response.reasoning_text.done", { ...thoughtPart, text: thought }),
      ev("response.content_part.done", { ...thoughtPart, part: { type: "reasoning_text", text: thought } }),
      ev("response.output_item.done", { output_index: 0, item: reasoningItem(reasoningId, thought, "completed") })];
  };
  /** The message item's opening events, once. */
  const opening = () => {
    if (opened) return [];
    opened = true;
    return [...thoughtDone(), ev("response.output_item.added", { output_index: thoughtItems, item: messageItem(messageId, "", "in_progress") }),
      ev("response.content_part.added", { ...part(), part: outputTextPart("") })];
  };
  return {
    messageId,
    head: () => [ev("response.created", { response: responseObject(f, undefined, messageId) }),
      ev("response.in_progress", { response: responseObject(f, undefined, messageId) })],
    thought: (delta: string) => {
      if (opened) return []; // a thought after the answer began: not a second reasoning item (node-llama-cpp ends at a call)
      // The part is announced before its deltas, as OpenAI streams reasoning text: the openai SDK's stream helpers
      // (responses.stream(), the Agents SDK) build the item from these events and threw without it.
      const open = thoughtItems ? [] : [ev("response.output_item.added", { output_index: 0, item: reasoningItem(reasoningId, "", "in_progress") }),
        ev("response.content_part.added", { ...thoughtPart, part: { type: "reasoning_text", text: "" } })];
      thoughtItems = 1;
      thinking = true;
      thought += delta;
      return [...open, ev("response.reasoning_text.delta", { ...thoughtPart, delta })];
    },
    piece: (delta: string, _choice: number, lp: TokenLogprob[] | null | undefined) => {
      const open = opening();
      text += delta;
      const entries = lp ? logprobEntries(lp) : [];
      logprobs.push(...entries);
      return [...open, ev("response.output_text.delta", { ...part(), delta, logprobs: entries })];
    },
    end: (g: Generation) => {
      // An answer with no text and no call (a forced call cut by max_output_tokens) still has its (empty) message in
      // the final response, as one answer has: it is announced here, so every item of it was streamed.
      const open = g.toolCalls?.length ? thoughtDone() : opening();
      const close = !opened ? open : [...open, ev("response.output_text.done", { ...part(), text, logprobs }),
        ev("response.content_part.done", { ...part(), part: outputTextPart(text, logprobs) }),
        ev("response.output_item.done", { output_index: thoughtItems, item: messageItem(messageId, text, messageStatus(g), logprobs) })];
      const calls = (g.toolCalls ?? []).flatMap((c, i) => {
        const output_index = i + thoughtItems + (opened ? 1 : 0), item_id = callItem(c, "completed").id;
        return [ev("response.output_item.added", { output_index, item: callItem(c, "in_progress") }),
          ev("response.function_call_arguments.delta", { item_id, output_index, delta: c.arguments }),
          ev("response.function_call_arguments.done", { item_id, output_index, name: c.name, arguments: c.arguments }),
          ev("response.output_item.done", { output_index, item: callItem(c, "completed") })];
      });
      const done = responseObject(f, { ...g, text, ...(thoughtItems ? { reasoning: thought } : { reasoning: undefined }) }, messageId, logprobs, reasoningId);
      return [...close, ...calls, ev(done.status === "incomplete" ? "response.incomplete" : "response.completed", { response: done })];
    },
  };
}
