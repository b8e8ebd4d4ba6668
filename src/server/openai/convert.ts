/** OpenAI wire requests → engine calls, and engine results → OpenAI responses. */
import { InvalidRequestError } from "../../errors";
import type { ChatTurn, Embeddings, Generation, ModelInfo, OutputFormat, Sampling } from "../../engine/engine";
import type { ChatCompletionRequest, CompletionRequest } from "./wire";

export interface Limits { defaultMaxTokens: number; maxTokensCap: number }

export function toSampling(req: ChatCompletionRequest | CompletionRequest, limits: Limits, contextSize: number): Sampling {
  const requested = ("max_completion_tokens" in req ? req.max_completion_tokens : undefined) ?? req.max_tokens;
  const cap = Math.min(limits.maxTokensCap, contextSize);
  if (requested != null && requested > cap) {
    throw new InvalidRequestError(`max_tokens is ${requested}; the most this server allows is ${cap}.`, "max_tokens");
  }
  return {
    maxTokens: requested ?? Math.min(limits.defaultMaxTokens, cap),
    temperature: req.temperature ?? undefined,
    topP: req.top_p ?? undefined,
    topK: req.top_k ?? undefined,
    seed: req.seed ?? undefined,
    stop: req.stop == null ? undefined : typeof req.stop === "string" ? [req.stop] : req.stop,
    presencePenalty: req.presence_penalty ?? undefined,
    frequencyPenalty: req.frequency_penalty ?? undefined,
    format: toFormat(req.response_format),
  };
}

function toFormat(rf: ChatCompletionRequest["response_format"]): OutputFormat | undefined {
  if (!rf || rf.type === "text") return undefined;
  if (rf.type === "json_object") return { kind: "json" };
  if (!rf.json_schema.schema) return { kind: "json" };
  return { kind: "json_schema", schema: rf.json_schema.schema };
}

export function toTurns(req: ChatCompletionRequest): ChatTurn[] {
  return req.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: m.content == null ? "" : typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join(""),
  }));
}

export const promptText = (req: CompletionRequest) => (typeof req.prompt === "string" ? req.prompt : req.prompt[0]!);

const usage = (g: Pick<Generation, "promptTokens" | "completionTokens">) => ({
  prompt_tokens: g.promptTokens, completion_tokens: g.completionTokens, total_tokens: g.promptTokens + g.completionTokens,
});

export function chatCompletion(id: string, model: string, created: number, g: Generation) {
  return {
    id, object: "chat.completion" as const, created, model,
    choices: [{ index: 0, message: { role: "assistant" as const, content: g.text, refusal: null }, finish_reason: g.finishReason, logprobs: null }],
    usage: usage(g),
  };
}

export function textCompletion(id: string, model: string, created: number, g: Generation) {
  return {
    id, object: "text_completion" as const, created, model,
    choices: [{ index: 0, text: g.text, finish_reason: g.finishReason, logprobs: null }],
    usage: usage(g),
  };
}

export function chatChunk(id: string, model: string, created: number, delta: { role?: "assistant"; content?: string }, finish: string | null) {
  return { id, object: "chat.completion.chunk" as const, created, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
}

export function textChunk(id: string, model: string, created: number, text: string, finish: string | null) {
  return { id, object: "text_completion" as const, created, model, choices: [{ index: 0, text, finish_reason: finish, logprobs: null }] };
}

export function usageChunk(id: string, object: string, model: string, created: number, g: Pick<Generation, "promptTokens" | "completionTokens">) {
  return { id, object, created, model, choices: [], usage: usage(g) };
}

export function embeddingList(model: string, e: Embeddings, base64: boolean) {
  return {
    object: "list" as const,
    model,
    data: e.vectors.map((v, index) => ({
      object: "embedding" as const, index,
      embedding: base64 ? Buffer.from(new Float32Array(v).buffer).toString("base64") : v,
    })),
    usage: { prompt_tokens: e.promptTokens, total_tokens: e.promptTokens },
  };
}

export const modelObject = (m: ModelInfo) => ({ id: m.id, object: "model" as const, created: m.created, owned_by: "appliance" });
