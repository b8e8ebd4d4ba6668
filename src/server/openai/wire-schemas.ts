/**
 * OpenAI wire schemas (requests). Zod objects are strict: an unknown field is a
 * 400 naming it, except the few harmless OpenAI fields listed in IGNORED, which
 * are accepted and dropped here so they can never reach the engine.
 *
 * Built at the first request that uses one, not at program load: the routes import them through ./wire, whose
 * stand-ins load this module at their first use (lazy-schema.ts).
 */
import { z } from "zod";
import { MAX_CHOICES } from "./wire";

/** Accepted for SDK compatibility, never used. */
const IGNORED = {
  user: z.string().max(256).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(), // null as OpenAI allows (it was a 400 "expected record, received null")
  store: z.boolean().nullish(),
  service_tier: z.string().max(32).nullish(),
  prompt_cache_retention: z.enum(["in_memory", "in-memory", "24h"]).nullish(), // in_memory: the SDKs since 6.x; in-memory: earlier ones
};

const tokenIds = z.array(z.number().int().min(0)).min(1).max(1 << 17);

// A union's own message: zod's for no branch matching is just "Invalid input" (e.g. for a fifth stop string).
const stop = z.union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(4)],
  { error: "stop is a string or a list of at most 4 strings, each 1-256 characters" }).optional();

/** Only function tools run here; OpenAI's hosted tools (web_search, file_search, code_interpreter…) are its servers'. */
export const FUNCTION_TOOLS_ONLY = "only function tools are supported; hosted tools (web_search, file_search, …) are not";

const sampling = {
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().min(1).max(1 << 20).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  top_k: z.number().int().min(0).max(1000).nullish(),
  // OpenAI's is an int64; a JSON number is exact up to 2^53 (the engine maps it onto its sampler's seeds: engineSeed).
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop: stop.nullable(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  n: z.number().int().min(1).max(MAX_CHOICES, { message: `at most ${MAX_CHOICES} choices per request` }).nullish(),
  logit_bias: z.record(z.string().regex(/^\d{1,9}$/, "keys are token ids"), z.number().min(-100).max(100)).nullish()
    .refine((b) => !b || Object.keys(b).length <= 1024, "at most 1024 biased tokens"),
  stream: z.boolean().nullish(),
  // include_obfuscation pads stream events against side channels at OpenAI; nothing here leaves the machine.
  stream_options: z.strictObject({ include_usage: z.boolean().nullish(), include_obfuscation: z.boolean().nullish() }).nullish(),
  ...IGNORED,
};

const jsonSchemaFormat = z.strictObject({
  type: z.literal("json_schema"),
  json_schema: z.strictObject({
    name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
    description: z.string().max(4096).optional(),
    schema: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

/** `schema`: llama-server's and vLLM's extension (Instructor's JSON_SCHEMA mode sends it): JSON of that schema. */
export const jsonObjectFormat = z.strictObject({ type: z.literal("json_object"), schema: z.record(z.string(), z.unknown()).nullish() });

export const responseFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  jsonObjectFormat,
  jsonSchemaFormat,
]).nullish();

/** A prompt-cache hint of the SDKs since 6.x (where a reusable prefix ends) on a text part: accepted and not used. */
export const cacheBreakpoint = z.strictObject({ mode: z.literal("explicit") }).nullish();
const textPart = z.strictObject({ type: z.literal("text"), text: z.string(), prompt_cache_breakpoint: cacheBreakpoint });
const text = z.union([z.string(), z.array(textPart).max(256)]);
/** Parts a text-only model cannot take: accepted by the schema so convert.ts can refuse them by name. */
const mediaPart = z.looseObject({ type: z.enum(["image_url", "input_audio", "file"]) });
const refusalPart = z.strictObject({ type: z.literal("refusal"), refusal: z.string() });
/**
 * An assistant's text part as clients echo it: the OpenAI Agents SDK copies the rest of the answer's message into
 * it (`role`, `refusal: null`; `annotations: []` when streamed; a reasoning model's `reasoning_content`/`reasoning`),
 * and OpenAI takes that. Not model input, but the thought where the message itself carries none.
 */
const assistantTextPart = textPart.extend({
  role: z.literal("assistant").optional(), refusal: z.string().nullish(), annotations: z.array(z.unknown()).max(1024).nullish(),
  reasoning_content: z.string().nullish(), reasoning: z.string().nullish(),
});

/** A message's participant name; null as clients that default every field to None send it. Not model input. */
const participant = z.string().max(64).nullish();

/** `index`, `parsed_arguments` (and a message's `parsed`): what the openai SDK's helpers add to messages users echo back. */
export const toolCall = z.strictObject({
  id: z.string().min(1).max(256),
  type: z.literal("function"),
  index: z.number().int().min(0).optional(),
  function: z.strictObject({ name: z.string().min(1).max(64), arguments: z.string(), parsed_arguments: z.unknown().optional() }),
});

/**
 * Every message shape OpenAI accepts, so the documented multi-turn pattern (append
 * `choices[0].message` to the next request, `refusal: null` and all) works unchanged.
 */
export const chatMessage = z.discriminatedUnion("role", [
  z.strictObject({ role: z.enum(["system", "developer"]), content: text, name: participant }),
  z.strictObject({
    role: z.literal("user"),
    // An empty parts list is refused, as OpenAI refuses it (it was taken: the model answered an empty turn).
    content: z.union([z.string(), z.array(z.discriminatedUnion("type", [textPart, mediaPart])).min(1).max(256)]),
    name: participant,
  }),
  z.strictObject({
    role: z.literal("assistant"),
    content: z.union([z.string(), z.array(z.discriminatedUnion("type", [assistantTextPart, refusalPart])).max(256)]).nullish(),
    refusal: z.string().nullish(),
    name: participant,
    tool_calls: z.array(toolCall).max(128).nullish(),
    function_call: z.strictObject({ name: z.string().min(1).max(64), arguments: z.string() }).nullish(),
    audio: z.strictObject({ id: z.string() }).nullish(),
    annotations: z.array(z.unknown()).max(1024).nullish(), // url_citation results echoed back; not model input
    parsed: z.unknown().optional(), // the SDK's parse helpers; the content already holds the text
    // A reasoning model's thought as this server (and llama-server, vLLM) answers it, echoed back with the message.
    reasoning_content: z.string().nullish(),
    reasoning: z.string().nullish(), // the same, as vLLM's newer releases and OpenRouter name it
  }),
  // `name`: the tool's, as LangChain's ToolMessage carries it (@langchain/openai always sends it) and OpenAI's own
  // parallel function-calling examples wrote it; OpenAI accepts it. Not model input: the call it answers names the tool.
  z.strictObject({ role: z.literal("tool"), content: text, tool_call_id: z.string().min(1).max(256), name: participant }),
  z.strictObject({ role: z.literal("function"), content: z.string().nullable(), name: z.string().min(1).max(64) }),
]);

const toolName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "a tool name is 1-64 letters, digits, _ or -");

export const tool = z.strictObject({
  type: z.literal("function", { error: FUNCTION_TOOLS_ONLY }),
  function: z.strictObject({
    name: toolName,
    description: z.string().max(8192).optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

const namedFunction = z.strictObject({ type: z.literal("function"), function: z.strictObject({ name: toolName }) });
/**
 * tool_choice naming another kind of tool (custom, web_search, mcp…): said as `tools` says it, not zod's "Invalid
 * input" (fidelity run). Anything else is left to the union's own narrowing (server/errors.ts).
 */
export const hostedChoice = (iss: { input?: unknown }) => {
  const t = iss.input !== null && typeof iss.input === "object" ? (iss.input as { type?: unknown }).type : undefined;
  return typeof t === "string" && t !== "function" && t !== "allowed_tools" ? FUNCTION_TOOLS_ONLY : undefined;
};
export const toolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  namedFunction,
  // OpenAI's newer form: the tools the model may call this turn, a subset of `tools` (which stay in the prompt).
  z.strictObject({ type: z.literal("allowed_tools"),
    allowed_tools: z.strictObject({ mode: z.enum(["auto", "required"]), tools: z.array(namedFunction).min(1).max(128) }) }),
], { error: hostedChoice });

export const chatCompletionRequest = z.strictObject({
  ...sampling,
  messages: z.array(chatMessage).min(1),
  tools: z.array(tool).max(128).nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  /** Deprecated by OpenAI, still accepted there: one function call per answer, answered as `function_call`. */
  functions: z.array(tool.shape.function).max(128).nullish(),
  function_call: z.union([z.enum(["none", "auto"]), z.strictObject({ name: toolName })]).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  max_completion_tokens: z.number().int().min(1).max(1 << 20).nullish(),
  response_format: responseFormat,
  // Accepted as OpenAI's chat API accepts them (the Responses API here already does), never used: cache routing,
  // abuse tracking and a reasoning model's verbosity mean nothing for a local model.
  prompt_cache_key: z.string().max(256).nullish(),
  safety_identifier: z.string().max(256).nullish(),
  verbosity: z.enum(["low", "medium", "high"]).nullish(),
  // A reasoning model's effort (the AI SDK's providerOptions.openai.reasoningEffort), and a predicted output (a speed
  // hint at OpenAI: the answer is the same without it). Text is the only output modality: ["audio"] is a 400.
  // "none" (and chat_template_kwargs.enable_thinking false, as vLLM, SGLang and llama-server take it for Qwen 3-style
  // templates): a reasoning model answers after an empty thought. Other template arguments are a 400 naming them.
  reasoning_effort: z.enum(["none", "minimal", "low", "medium", "high", "xhigh"]).nullish(),
  chat_template_kwargs: z.strictObject({ enable_thinking: z.boolean().nullish() }).nullish(),
  prediction: z.strictObject({ type: z.literal("content"), content: z.union([z.string(), z.array(textPart)]) }).nullish(),
  modalities: z.array(z.literal("text", { message: "only text output is supported" })).max(2).nullish(),
  // Null as clients that default every parameter to None send them (OpenAI takes that); a value asks for what a
  // local text model does not do.
  audio: z.null({ message: "audio output is not supported" }).optional(),
  web_search_options: z.null({ message: "web search is not supported" }).optional(),
});

export const completionRequest = z.strictObject({
  ...sampling,
  // 0 with echo: the prompt scored (its logprobs), nothing generated, as OpenAI's legacy API and vLLM take it (older
  // lm-evaluation-harness asks so); the route refuses 0 without echo.
  max_tokens: z.number().int().min(0).max(1 << 20).nullish(),
  // The union's own message says what is taken (zod's was "Invalid input": an lm-eval batch of 17 prompts learnt nothing).
  prompt: z.union([z.string(), z.array(z.string()).min(1).max(MAX_CHOICES), tokenIds, z.array(tokenIds).min(1).max(MAX_CHOICES)],
    { error: `prompt is a string, a list of 1-${MAX_CHOICES} strings, a list of token ids, or a list of 1-${MAX_CHOICES} such lists` }),
  echo: z.boolean().nullish(),
  /** Alternatives per token (OpenAI allows 0-5). */
  logprobs: z.number().int().min(0).max(5).nullish(),
  best_of: z.literal(1, { message: "only best_of=1 is supported" }).nullish(),
  suffix: z.null({ message: "suffix is not supported" }).optional(),
  response_format: responseFormat,
});

export const embeddingRequest = z.strictObject({
  model: z.string().min(1).max(256),
  input: z.union([z.string(), z.array(z.string()).min(1).max(2048), tokenIds, z.array(tokenIds).min(1).max(2048)],
    { error: "input is a string, a list of 1-2048 strings, a list of token ids, or a list of 1-2048 lists of token ids (an empty list is not)" }),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).max(1 << 16).nullish(),
  user: IGNORED.user,
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;
export type CompletionRequest = z.infer<typeof completionRequest>;
export type TokenizeRequest = z.infer<typeof tokenizeRequest>;

/** Response shapes, for the docs page. */
export const errorBody = z.object({
  error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string().nullable() }),
});
export const modelObject = z.object({ id: z.string(), object: z.literal("model"), created: z.number(), owned_by: z.string() });
export const modelList = z.object({ object: z.literal("list"), data: z.array(modelObject) });

/**
 * POST /tokenize (llama-server's extension): text → token ids. `model` may be left out when one model is served.
 * vLLM's spelling is taken too: `prompt` for `content`, `add_special_tokens` for `add_special`.
 */
export const tokenizeRequest = z.strictObject({
  model: z.string().min(1).max(256).optional(),
  content: z.string().max(1 << 20).optional(),
  prompt: z.string().max(1 << 20).optional(),
  add_special: z.boolean().optional(),
  add_special_tokens: z.boolean().optional(),
  with_pieces: z.boolean().optional(),
  /** llama-server's: only false here (special-token spellings stay text, as the completion routes read them). */
  parse_special: z.literal(false, { message: "special-token spellings are read as text here, as the completion routes read them: only parse_special false" }).optional(),
  // vLLM's chat form: the messages (and tools) as the model's chat template renders them for an answer.
  messages: z.array(chatMessage).min(1).max(1 << 12).optional(),
  tools: z.array(tool).max(128).optional(),
  add_generation_prompt: z.literal(true, { message: "the template is rendered for an answer, as chat completions evaluate it: only add_generation_prompt true" }).optional(),
  continue_final_message: z.literal(false, { message: "only continue_final_message false (chat completions start a new answer)" }).optional(),
  return_token_strs: z.boolean().optional(),
});

/** POST /detokenize (llama-server's extension): token ids → text. */
export const detokenizeRequest = z.strictObject({
  model: z.string().min(1).max(256).optional(),
  tokens: z.array(z.number().int().min(0)).max(1 << 17),
});

/**
 * 200 bodies, for the docs page. Loose (extra fields pass) on purpose: they document the shape; the
 * converters in convert.ts and responses.ts are what build it. A stream answers text/event-stream instead.
 */
const usageShape = z.looseObject({ prompt_tokens: z.number(), completion_tokens: z.number(), total_tokens: z.number() });
export const chatCompletionObject = z.looseObject({
  id: z.string(), object: z.literal("chat.completion"), created: z.number(), model: z.string(),
  choices: z.array(z.looseObject({
    index: z.number(), finish_reason: z.string(),
    message: z.looseObject({ role: z.literal("assistant"), content: z.string().nullable(), tool_calls: z.array(z.unknown()).optional() }),
  })),
  usage: usageShape,
});
export const textCompletionObject = z.looseObject({
  id: z.string(), object: z.literal("text_completion"), created: z.number(), model: z.string(),
  choices: z.array(z.looseObject({ index: z.number(), text: z.string(), finish_reason: z.string() })),
  usage: usageShape,
});
export const embeddingListObject = z.looseObject({
  object: z.literal("list"), model: z.string(),
  data: z.array(z.looseObject({ object: z.literal("embedding"), index: z.number(), embedding: z.union([z.array(z.number()), z.string()]) })),
  usage: z.looseObject({ prompt_tokens: z.number(), total_tokens: z.number() }),
});
export const responseObjectShape = z.looseObject({
  id: z.string(), object: z.literal("response"), created_at: z.number(), status: z.string(), model: z.string(),
  output: z.array(z.looseObject({ type: z.string() })), usage: z.looseObject({}).nullable(),
});
