/**
 * POST /v1/responses request schema (OpenAI's Responses API), the part a
 * stateless text server can honour: text or item input, instructions,
 * structured output through text.format, function tools, streaming.
 * Fields that only make sense with stored responses or hosted tools are
 * refused by name in responses.ts rather than silently dropped.
 *
 * Built at the first request that uses it, not at program load: routes/responses.ts imports it through
 * ./responses-wire, whose stand-in loads this module at its first use (lazy-schema.ts).
 */
import { z } from "zod";
import { FUNCTION_TOOLS_ONLY, cacheBreakpoint, hostedChoice, jsonObjectFormat } from "./wire-schemas";

const inputText = z.strictObject({ type: z.literal("input_text"), text: z.string(), prompt_cache_breakpoint: cacheBreakpoint });
/**
 * Who made a call (the SDKs since 6.x echo it back in history): the model, or a program the model ran. History only:
 * accepted and not used.
 */
const caller = z.union([z.strictObject({ type: z.literal("direct") }), z.strictObject({ type: z.literal("program"), caller_id: z.string().max(256) })]).nullish();
/** `parsed` (and a call's `parsed_arguments`): what the openai SDK's stream and parse helpers add to output items users echo back. */
const outputText = z.strictObject({
  type: z.literal("output_text"), text: z.string(), annotations: z.array(z.unknown()).optional(), logprobs: z.array(z.unknown()).optional(),
  parsed: z.unknown().optional(),
});
const refusal = z.strictObject({ type: z.literal("refusal"), refusal: z.string() });
/** Parts a text-only model cannot take: accepted here so the refusal names them. */
const media = z.looseObject({ type: z.enum(["input_image", "input_file", "input_audio"]) });

const messageItem = z.strictObject({
  type: z.literal("message").optional(),
  id: z.string().max(256).optional(),
  status: z.string().max(32).optional(),
  role: z.enum(["user", "system", "developer", "assistant"]),
  /** Which part of a reasoning model's answer a message was (echoed back in history): not used. */
  phase: z.enum(["commentary", "final_answer"]).nullish(),
  content: z.union([z.string(), z.array(z.discriminatedUnion("type", [inputText, outputText, refusal, media])).max(256)]),
});
const functionCallItem = z.strictObject({
  type: z.literal("function_call"),
  id: z.string().max(256).optional(),
  call_id: z.string().min(1).max(256),
  name: z.string().min(1).max(64),
  arguments: z.string(),
  parsed_arguments: z.unknown().optional(),
  status: z.string().max(32).nullish(),
  caller,
  namespace: z.string().max(256).optional(),
});
const functionOutputItem = z.strictObject({
  type: z.literal("function_call_output"),
  id: z.string().max(256).nullish(),
  call_id: z.string().min(1).max(256),
  output: z.union([z.string(), z.array(z.discriminatedUnion("type", [inputText, media])).max(256)]),
  status: z.string().max(32).nullish(),
  caller,
});
/** Reasoning items a client echoes back from a reasoning model: there is nothing to do with them here. */
const reasoningItem = z.looseObject({ type: z.literal("reasoning") });

/** A pointer to a stored item: accepted by the schema so responses.ts can refuse it by name (nothing is stored). */
const itemReference = z.looseObject({ type: z.literal("item_reference"), id: z.string().max(256) });

export const responsesItem = z.union([messageItem, functionCallItem, functionOutputItem, reasoningItem, itemReference]);

const toolName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "a tool name is 1-64 letters, digits, _ or -");
const namedTool = z.strictObject({ type: z.literal("function"), name: toolName });

export const responsesRequest = z.strictObject({
  model: z.string().min(1).max(256),
  input: z.union([z.string(), z.array(responsesItem).min(1).max(1024)]),
  instructions: z.string().nullish(),
  max_output_tokens: z.number().int().min(1).max(1 << 20).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  stream: z.boolean().nullish(),
  text: z.strictObject({
    format: z.discriminatedUnion("type", [
      z.strictObject({ type: z.literal("text") }),
      jsonObjectFormat, // as chat's response_format takes it (convert.ts toFormat)
      z.strictObject({
        type: z.literal("json_schema"),
        name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
        schema: z.record(z.string(), z.unknown()),
        description: z.string().max(4096).optional(),
        strict: z.boolean().nullish(),
      }),
    ]).optional(),
    verbosity: z.enum(["low", "medium", "high"]).nullish(),
  }).nullish(),
  tools: z.array(z.strictObject({
    type: z.literal("function", { error: FUNCTION_TOOLS_ONLY }),
    name: toolName,
    description: z.string().max(8192).nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
    // The SDKs since 6.x: a description of what the function returns (not used), and the defaults of tool search
    // and programmatic calls, which need hosted tools: other values are refused by name.
    output_schema: z.record(z.string(), z.unknown()).nullish(),
    defer_loading: z.literal(false, { message: "deferred tool loading needs tool search (a hosted tool), which this server does not have: leave it out or false" }).optional(),
    allowed_callers: z.array(z.literal("direct", { message: "only the model itself calls tools here (no programmatic callers): [\"direct\"] or leave it out" })).min(1).max(2).nullish(),
  })).max(128).nullish(),
  tool_choice: z.union([z.enum(["none", "auto", "required"]), namedTool,
    z.strictObject({ type: z.literal("allowed_tools"), mode: z.enum(["auto", "required"]), tools: z.array(namedTool).min(1).max(128) })],
    { error: hostedChoice }).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  /** Refused: responses are not stored (stateless). */
  previous_response_id: z.string().max(256).nullish(),
  store: z.boolean().nullish(),
  truncation: z.enum(["auto", "disabled"]).nullish(),
  include: z.array(z.string().max(128)).max(16).nullish(),
  /** Alternatives per token with logprobs (asked for by `include: ["message.output_text.logprobs"]` or this field). */
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  reasoning: z.looseObject({}).nullish(),
  // OpenAI's Responses stream_options has one field (any other was taken and ignored here)
  stream_options: z.strictObject({ include_obfuscation: z.boolean().nullish() }).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  user: z.string().max(256).nullish(),
  safety_identifier: z.string().max(256).nullish(),
  prompt_cache_key: z.string().max(256).nullish(),
  service_tier: z.string().max(32).nullish(),
  prompt_cache_retention: z.enum(["in_memory", "in-memory", "24h"]).nullish(), // in_memory: the SDKs since 6.x; in-memory: earlier ones
  // Calls to built-in (hosted) tools, of which there are none here; function calls are not counted by it.
  max_tool_calls: z.number().int().min(1).nullish(),
  background: z.literal(false, { message: "background responses are not supported (nothing is stored): leave it out or false" }).nullish(),
  /** Refused like previous_response_id: no conversation is stored. */
  conversation: z.union([z.string().max(256), z.looseObject({ id: z.string().max(256) })]).nullish(),
  // Null as clients that default every parameter to None send them; a value needs what is not kept here.
  prompt: z.null({ message: "stored prompts are not supported (nothing is stored): leave it out or null" }).optional(),
  context_management: z.null({ message: "context management is not supported: leave it out or null" }).optional(),
});

export type ResponsesRequest = z.infer<typeof responsesRequest>;
