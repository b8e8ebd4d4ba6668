/** OpenAI wire requests → engine calls, and engine results → OpenAI responses. */
import { InvalidRequestError } from "../../errors";
import { checkEmbeddedJson, type JsonBounds } from "../../guards/json-shape";
import type { ChatTurn, Embeddings, Generation, ModelInfo, OutputFormat, Sampling, ToolCall, ToolUse } from "../../engine/engine";
import { engineSeed, SEEDS } from "../../engine/seed";
import { checkJsonSchema, type SchemaBudget } from "./json-schema";
import { grammarSchema } from "./json-schema-grammar";
import { chatLogprobs, choiceTextLogprobs, spelled, type textLogprobs } from "./logprob-wire";
import { MAX_CHOICES, type ChatCompletionRequest, type CompletionRequest } from "./wire";

export interface Limits { defaultMaxTokens: number; maxTokensCap: number }

/**
 * Wire sampling → engine sampling, with OpenAI's defaults (temperature 1, top_p 1; no seed
 * means fresh randomness, chosen in the engine). A json_schema is checked here so a bad one
 * is a 400 naming where it is wrong.
 */
export function toSampling(req: ChatCompletionRequest | CompletionRequest, limits: Limits, contextSize: number,
  specialTokens: readonly string[]): Sampling {
  const completion = "max_completion_tokens" in req ? req.max_completion_tokens : undefined;
  const requested = completion ?? req.max_tokens;
  const cap = Math.min(limits.maxTokensCap, contextSize);
  if (requested != null && requested > cap) {
    const param = completion != null ? "max_completion_tokens" : "max_tokens"; // the field the client sent
    throw new InvalidRequestError(`${param} is ${requested}; the most this server allows is ${cap}.`, param, "invalid_value");
  }
  return {
    maxTokens: requested ?? Math.min(limits.defaultMaxTokens, cap),
    maxTokensDefaulted: requested == null,
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    topK: req.top_k ?? undefined,
    seed: req.seed ?? undefined,
    stop: req.stop == null ? undefined : typeof req.stop === "string" ? [req.stop] : req.stop,
    logitBias: req.logit_bias ? new Map(Object.entries(req.logit_bias).map(([k, v]) => [Number(k), v])) : undefined,
    presencePenalty: req.presence_penalty ?? undefined,
    frequencyPenalty: req.frequency_penalty ?? undefined,
    format: toFormat(req.response_format, specialTokens),
    logprobs: logprobsOf(req),
    promptLogprobs: "prompt" in req && !!req.echo && req.logprobs != null,
  };
}

/** Alternatives per token, or undefined when logprobs were not asked for. */
function logprobsOf(req: ChatCompletionRequest | CompletionRequest): number | undefined {
  let top: number | undefined;
  if ("messages" in req) {
    if (req.top_logprobs != null && req.logprobs !== true) {
      throw new InvalidRequestError("top_logprobs needs logprobs: true.", "top_logprobs");
    }
    top = req.logprobs ? req.top_logprobs ?? 0 : undefined;
  } else {
    top = req.logprobs ?? undefined;
  }
  return top;
}

function toFormat(rf: ChatCompletionRequest["response_format"], specialTokens: readonly string[]): OutputFormat | undefined {
  if (!rf || rf.type === "text") return undefined;
  if (rf.type === "json_object") {
    // An empty schema is any JSON: json_object's own grammar (an object), as without one.
    return rf.schema && Object.keys(rf.schema).length ? { kind: "json_schema", schema: checkedSchema(rf.schema, specialTokens, "response_format.schema") } : { kind: "json" };
  }
  if (!rf.json_schema.schema) return { kind: "json" };
  return { kind: "json_schema", schema: checkedSchema(rf.json_schema.schema, specialTokens, "response_format.json_schema.schema") };
}

/** A request's schema checked (a 400 naming what is wrong), in the form its grammar is made from. */
function checkedSchema(schema: Record<string, unknown>, specialTokens: readonly string[], param: string, budget?: SchemaBudget): Record<string, unknown> {
  checkJsonSchema(schema, specialTokens, param, budget);
  return grammarSchema(schema, param);
}

/** tools / tool_choice / parallel_tool_calls → the engine's ToolUse; none when there are no tools or the choice is "none". */
export function toToolUse(req: ChatCompletionRequest, specialTokens: readonly string[]): ToolUse | undefined {
  if (req.functions != null || req.function_call != null) return toToolUse(fromFunctions(req), specialTokens);
  const tools = req.tools ?? [];
  const choice = req.tool_choice ?? (tools.length ? "auto" : "none");
  if (choice !== "none" && !tools.length) throw new InvalidRequestError("tool_choice needs tools.", "tool_choice");
  const seen = new Set<string>();
  // One grammar is made of every tool's parameters (auto and required choose among them): their enums count together.
  const budget: SchemaBudget = { enumValues: 0 };
  const parameters = tools.map((t, i) => {
    if (seen.has(t.function.name)) throw new InvalidRequestError(`Tool '${t.function.name}' is defined twice.`, `tools.${i}.function.name`);
    seen.add(t.function.name);
    const type = t.function.parameters && rootType(t.function.parameters);
    if (type && type !== "object") {
      // OpenAI's answer too: the SDKs, the AI SDK and agent frameworks all read a call's arguments as an object
      throw new InvalidRequestError(`Invalid schema for function '${t.function.name}': parameters must be a JSON Schema of type "object", got type ${JSON.stringify(type)}.`, `tools.${i}.function.parameters`);
    }
    return t.function.parameters && checkedSchema(t.function.parameters, specialTokens, `tools.${i}.function.parameters`, budget);
  });
  if (choice === "none") return undefined;
  const specs = tools.map((t, i) => ({ name: t.function.name, description: t.function.description, parameters: parameters[i] }));
  const parallel = req.parallel_tool_calls ?? true;
  if (typeof choice === "string") return { tools: specs, choice, parallel };
  if (choice.type === "function") {
    if (!seen.has(choice.function.name)) throw new InvalidRequestError(`tool_choice names '${choice.function.name}', which is not in tools.`, "tool_choice");
    return { tools: specs, choice: { name: choice.function.name }, parallel };
  }
  // allowed_tools: only the listed tools can be called, and the model is shown only those (what it cannot call it
  // is not told about); mode is "auto" or "required" over them.
  const allowed = new Set<string>();
  choice.allowed_tools.tools.forEach((t, i) => {
    if (!seen.has(t.function.name)) {
      throw new InvalidRequestError(`tool_choice.allowed_tools names '${t.function.name}', which is not in tools.`, `tool_choice.allowed_tools.tools.${i}.function.name`);
    }
    allowed.add(t.function.name);
  });
  return { tools: specs.filter((t) => allowed.has(t.name)), choice: choice.allowed_tools.mode, parallel };
}

/**
 * The deprecated `functions` / `function_call` as tools / tool_choice, as OpenAI still takes them: one call
 * per answer (no parallel calls). Mixing them with tools is refused.
 */
/** Keywords that make a schema with no `type` a non-object one (what json-schema-grammar.ts infers the type from). */
const NOT_OBJECT: [string, string[]][] = [["array", ["items", "prefixItems", "minItems", "maxItems"]], ["string", ["minLength", "maxLength", "pattern", "format"]]];

/** A tool's parameters' root type, written or implied by its keywords; undefined where neither says (a $ref, a union). */
function rootType(s: unknown): unknown {
  if (typeof s !== "object" || s === null) return undefined;
  const o = s as Record<string, unknown>;
  if ("type" in o) return Array.isArray(o.type) && o.type.length === 1 ? o.type[0] : o.type;
  return NOT_OBJECT.find(([, keys]) => keys.some((k) => k in o))?.[0];
}

function fromFunctions(req: ChatCompletionRequest): ChatCompletionRequest {
  if (req.tools != null || req.tool_choice != null) {
    throw new InvalidRequestError("Use tools and tool_choice, or the deprecated functions and function_call, not both.", "functions");
  }
  if (req.function_call != null && !req.functions?.length) throw new InvalidRequestError("function_call needs functions.", "function_call");
  const fc = req.function_call;
  return {
    ...req, functions: undefined, function_call: undefined, parallel_tool_calls: false,
    tools: req.functions?.map((f) => ({ type: "function" as const, function: f })),
    tool_choice: fc == null ? undefined : typeof fc === "string" ? fc : { type: "function", function: { name: fc.name } },
  };
}

/** The request used the deprecated `functions`: its answer names the call `function_call`, as OpenAI's does. */
export const usesFunctions = (req: ChatCompletionRequest) => req.functions != null;

type WireMessage = ChatCompletionRequest["messages"][number];
/**
 * A message's text parts, one after another with a newline between them, as vLLM and llama-server join them: joined with
 * nothing, the last word of one part ran into the first of the next ("…end.Question", LangChain and the Agents SDK send
 * context and question as separate parts; peer-fidelity run). Responses input items are joined the same way.
 */
export const PART_SEPARATOR = "\n";
const joinText = (c: string | { text: string }[]) => (typeof c === "string" ? c : c.map((p) => p.text).join(PART_SEPARATOR));

/**
 * OpenAI messages → engine turns. Tool results are tied to the call they answer
 * (by tool_call_id; the deprecated `function` role by the latest function_call);
 * a result that answers no earlier call is refused, as OpenAI does.
 */
export function toTurns(req: ChatCompletionRequest, bounds: JsonBounds): ChatTurn[] {
  const callIds = new Set<string>();
  let lastFunctionCall: string | undefined;
  return req.messages.map((m: WireMessage, i): ChatTurn => {
    switch (m.role) {
      case "system": case "developer": return { role: "system", content: joinText(m.content) };
      case "user": {
        if (typeof m.content === "string") return { role: "user", content: m.content };
        const media = m.content.findIndex((p) => p.type !== "text");
        if (media >= 0) {
          throw new InvalidRequestError(`This server's models read text only: '${m.content[media]!.type}' content parts are not supported.`,
            `messages.${i}.content.${media}`, "unsupported_content");
        }
        return { role: "user", content: joinText(m.content as { text: string }[]) };
      }
      case "assistant": {
        const calls = (m.tool_calls ?? []).map((c, j) => {
          checkArguments(c.function.arguments, `messages.${i}.tool_calls.${j}.function.arguments`, bounds);
          return { id: c.id, name: c.function.name, arguments: c.function.arguments };
        });
        if (m.function_call) {
          checkArguments(m.function_call.arguments, `messages.${i}.function_call.arguments`, bounds);
          lastFunctionCall = `function_call_${i}`;
          calls.push({ id: lastFunctionCall, name: m.function_call.name, arguments: m.function_call.arguments });
        }
        for (const c of calls) callIds.add(c.id);
        const parts = m.content == null ? "" : typeof m.content === "string" ? m.content
          : m.content.map((p) => (p.type === "text" ? p.text : p.refusal)).join(PART_SEPARATOR);
        // A refusal is what the assistant said when it said nothing else.
        // The Agents SDK's chat model sends the thought back inside the text part (it copies the message's other fields there).
        const inPart = Array.isArray(m.content) ? m.content.find((p) => p.type === "text" && (p.reasoning_content || p.reasoning)) : undefined;
        const reasoning = m.reasoning_content || m.reasoning || (inPart?.type === "text" ? inPart.reasoning_content || inPart.reasoning : undefined);
        return { role: "assistant", content: parts || (m.refusal ?? ""), ...(calls.length ? { toolCalls: calls } : {}), ...(reasoning ? { reasoning } : {}) };
      }
      case "tool": {
        if (!callIds.has(m.tool_call_id)) {
          throw new InvalidRequestError(`messages[${i}] answers tool call '${m.tool_call_id}', which no earlier assistant message made.`,
            `messages.${i}.tool_call_id`);
        }
        const content = joinText(m.content);
        checkEmbeddedJson(content, bounds, `messages.${i}.content`);
        return { role: "tool", content, toolCallId: m.tool_call_id };
      }
      case "function": {
        if (!lastFunctionCall) {
          throw new InvalidRequestError(`messages[${i}] is a function result, but no earlier assistant message has a function_call.`, `messages.${i}`);
        }
        return { role: "tool", content: m.content ?? "", toolCallId: lastFunctionCall };
      }
    }
  });
}

/** A call's arguments sent back: JSON text within the body's bounds (`kind` names the call as the API does). */
export function checkArguments(args: string, param: string, bounds: JsonBounds, kind: "Tool" | "Function" = "Tool") {
  try {
    JSON.parse(args);
  } catch {
    throw new InvalidRequestError(`${kind} call arguments must be a JSON text.`, param);
  }
  checkEmbeddedJson(args, bounds, param);
}

/** A completions request's prompts, each text or token ids. */
export function prompts(req: CompletionRequest): (string | number[])[] {
  const p = req.prompt;
  if (typeof p === "string") return [p];
  if (p.length && typeof p[0] === "number") return [p as number[]];
  return p as (string | number[])[];
}

/** How many choices a request asks for (n × prompts), at most MAX_CHOICES. */
export function choiceCount(n: number, prompts: number): number {
  const total = n * prompts;
  if (total > MAX_CHOICES) throw new InvalidRequestError(`${total} choices requested (n × prompts); the most is ${MAX_CHOICES}.`, "n");
  return total;
}

/**
 * Whether a stream ends with a usage chunk. `stream_options` without `stream` is a 400, as OpenAI answers it (it was
 * taken and ignored here, so code written against this server failed against OpenAI).
 */
export function includeUsage(body: { stream?: boolean | null; stream_options?: StreamOptions | null }): boolean {
  if (body.stream_options != null && body.stream !== true) {
    throw new InvalidRequestError("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options");
  }
  return (body.stream_options as { include_usage?: boolean | null } | null | undefined)?.include_usage ?? false;
}

/** Chat's and completions' stream_options (include_usage) or the Responses API's (include_obfuscation). */
export type StreamOptions = { include_usage?: boolean | null } | { include_obfuscation?: boolean | null };

/**
 * Choice i's sampling: with a seed, each of the n choices of a prompt gets its own (seed + i), still reproducible
 * (the engine maps it onto the sampler's seeds: engineSeed).
 */
export const choiceSampling = (s: Sampling, choice: number, n: number): Sampling =>
  // On the engine's seed, not the request's: near ±2^53 a double's seed + 1 rounds back to seed (two choices alike).
  s.seed == null || choice % n === 0 ? s : { ...s, seed: (engineSeed(s.seed) + (choice % n)) % SEEDS };

/**
 * `false` where the request asks a reasoning model not to think (reasoning_effort "none", chat_template_kwargs
 * enable_thinking false; the Responses API's reasoning.effort "none" arrives as reasoning_effort): the engine's `thinking`.
 */
export const thinkingOf = (req: Pick<ChatCompletionRequest, "reasoning_effort" | "chat_template_kwargs">): false | undefined =>
  req.reasoning_effort === "none" || req.chat_template_kwargs?.enable_thinking === false ? false : undefined;

/** Token counts of an answer: its prompt's (and of those, the cached start's) and the generated ones. */
export type UsageCounts = Pick<Generation, "promptTokens" | "cachedTokens" | "completionTokens" | "reasoningTokens">;

const usage = (g: UsageCounts) => ({
  prompt_tokens: g.promptTokens, completion_tokens: g.completionTokens, total_tokens: g.promptTokens + g.completionTokens,
  prompt_tokens_details: { cached_tokens: g.cachedTokens ?? 0 },
  ...(g.reasoningTokens ? { completion_tokens_details: { reasoning_tokens: g.reasoningTokens } } : {}),
});

const wireCalls = (calls: ToolCall[]) =>
  calls.map((c, index) => ({ index, id: c.id, type: "function" as const, function: { name: c.name, arguments: c.arguments } }));

/** The answer as OpenAI's message: with calls, `content` is null unless the model also wrote text. `legacy`: `function_call`. */
function assistantMessage(g: Generation, legacy = false) {
  // A reasoning model's thought under both names clients read: llama-server's (and vLLM's older) reasoning_content,
  // vLLM's newer reasoning (the Agents SDK's chat model reads only that). OpenAI's own API returns none.
  const thought = g.reasoning ? { reasoning_content: g.reasoning, reasoning: g.reasoning } : {};
  if (!g.toolCalls?.length) return { role: "assistant" as const, content: g.text, ...thought, refusal: null };
  if (legacy) return { role: "assistant" as const, content: g.text || null, ...thought, refusal: null, function_call: functionCall(g.toolCalls) };
  return { role: "assistant" as const, content: g.text || null, ...thought, refusal: null, tool_calls: wireCalls(g.toolCalls).map(({ index: _, ...c }) => c) };
}

/** Streamed calls: one delta carrying each call whole (id, name and arguments). */
export const toolCallsDelta = (calls: ToolCall[]) => ({ tool_calls: wireCalls(calls) });

/** The deprecated functions API answers with one call (the request allows no parallel calls). */
const functionCall = (calls: ToolCall[]) => ({ name: calls[0]!.name, arguments: calls[0]!.arguments });
/** A streamed call of the deprecated functions API. */
export const functionCallDelta = (calls: ToolCall[]) => ({ function_call: functionCall(calls) });
/** The finish reason the deprecated functions API names a call by. */
export const legacyFinish = (finish: string, legacy: boolean) => (legacy && finish === "tool_calls" ? "function_call" : finish);

/**
 * Usage of several choices: completion tokens add up; each prompt counts once per `perPrompt` choices sharing it,
 * with the cached start its first choice found.
 */
export const totalUsage = (gs: UsageCounts[], perPrompt: number): Required<UsageCounts> => ({
  promptTokens: gs.reduce((n, g, i) => n + (i % perPrompt === 0 ? g.promptTokens : 0), 0),
  cachedTokens: gs.reduce((n, g, i) => n + (i % perPrompt === 0 ? g.cachedTokens ?? 0 : 0), 0),
  completionTokens: gs.reduce((n, g) => n + g.completionTokens, 0),
  reasoningTokens: gs.reduce((n, g) => n + (g.reasoningTokens ?? 0), 0),
});
const usageOf = (gs: Generation[], perPrompt: number) => usage(totalUsage(gs, perPrompt));

export function chatCompletion(id: string, model: string, created: number, gs: Generation[], legacy = false) {
  return {
    id, object: "chat.completion" as const, created, model,
    choices: gs.map((g, index) => ({ index, message: assistantMessage(g, legacy), finish_reason: legacyFinish(g.finishReason, legacy), logprobs: chatLogprobs(spelled(g.logprobs, g.text)) })),
    usage: usageOf(gs, gs.length),
  };
}

/** `echo[i]`: the prompt text shown before choice i's text. */
export function textCompletion(id: string, model: string, created: number, gs: Generation[], perPrompt: number, echo?: string[]) {
  return {
    id, object: "text_completion" as const, created, model,
    choices: gs.map((g, index) => ({ index, text: (echo?.[index] ?? "") + g.text, finish_reason: g.finishReason, logprobs: choiceTextLogprobs(g, echo?.[index]) })),
    usage: usageOf(gs, perPrompt),
  };
}

/** One stream chunk of choice `index`; `logprobs` as chatLogprobs builds it. */
export function chatChunk(id: string, model: string, created: number,
  delta: { role?: "assistant"; content?: string | null } | { reasoning_content: string; reasoning: string } | ReturnType<typeof toolCallsDelta> | ReturnType<typeof functionCallDelta>,
  finish: string | null, index = 0, logprobs: ReturnType<typeof chatLogprobs> = null) {
  return { id, object: "chat.completion.chunk" as const, created, model, choices: [{ index, delta, finish_reason: finish, logprobs }] };
}

/** One stream chunk of choice `index`; `logprobs` as textLogprobs builds it. */
export function textChunk(id: string, model: string, created: number, text: string, finish: string | null, index = 0,
  logprobs: ReturnType<typeof textLogprobs> | null = null) {
  return { id, object: "text_completion" as const, created, model, choices: [{ index, text, finish_reason: finish, logprobs }] };
}

export function usageChunk(id: string, object: string, model: string, created: number, g: UsageCounts) {
  return { id, object, created, model, choices: [], usage: usage(g) };
}

/**
 * OpenAI's embeddings are unit length, so clients use the dot product as cosine similarity.
 * Rounded to float32 so the float and base64 encodings carry the same numbers.
 */
function unitLength(v: number[]): number[] {
  const norm = Math.hypot(...v);
  return norm > 0 ? v.map((x) => Math.fround(x / norm)) : v;
}

/** `dimensions` keeps the first that many components (then unit length again), as OpenAI's v3 models do. */
export function embeddingList(model: string, e: Embeddings, base64: boolean, dimensions?: number) {
  const size = e.vectors[0]?.length ?? 0;
  if (dimensions != null && dimensions > size) {
    throw new InvalidRequestError(`dimensions is ${dimensions}; this model's embeddings have ${size}.`, "dimensions");
  }
  return {
    object: "list" as const,
    model,
    data: e.vectors.map((v) => unitLength(dimensions ? v.slice(0, dimensions) : v)).map((v, index) => ({
      object: "embedding" as const, index,
      embedding: base64 ? Buffer.from(new Float32Array(v).buffer).toString("base64") : v,
    })),
    usage: { prompt_tokens: e.promptTokens, total_tokens: e.promptTokens },
  };
}

export const modelObject = (m: ModelInfo) => ({ id: m.id, object: "model" as const, created: m.created, owned_by: "appliance" });
