/**
 * Engine types → node-llama-cpp options: sampling (OpenAI's numbers in its terms), chat history,
 * the context check, and what a model file says about its vocabulary.
 */
import { engineSeed } from "./seed";
import { jsonOr } from "./tool-results";
import { LlamaVocabularyType, TokenBias, type ChatHistoryItem, type ChatModelResponse, type LlamaGrammar, type LlamaModel, type Token } from "node-llama-cpp";
import { ContextLengthError, InvalidRequestError } from "../errors";
import type { ChatTurn, GenerateCall, Sampling } from "./engine";

/** Token types that are never plain text (GGUF: 3 control, 4 user-defined). */
const SPECIAL_TYPES = new Set([3, 4]);

/**
 * The sampling a prompt of `prompt` tokens runs with: a defaulted maxTokens fitted to the context; a 400 if what was
 * asked for does not fit. `atLeast`: `prompt` is a lower bound (long-text.ts countBeyond), which the 400 says.
 */
export function fitContext(limit: number, prompt: number, s: Sampling, param: "messages" | "prompt" = "messages", atLeast = false): Sampling {
  const maxTokens = s.maxTokensDefaulted ? Math.max(1, Math.min(s.maxTokens, limit - prompt)) : s.maxTokens;
  if (prompt + maxTokens > limit) throw new ContextLengthError(limit, prompt, maxTokens, param, atLeast);
  return maxTokens === s.maxTokens ? s : { ...s, maxTokens };
}

/** What chat and completion generation share; counts generated tokens as they arrive. */
export function generateOptions(call: GenerateCall, grammar: LlamaGrammar | undefined, model: LlamaModel) {
  let tokens = 0;
  const options = {
    ...samplingOptions(call.sampling, model),
    grammar,
    signal: call.signal,
    stopOnAbortSignal: true, // resolve with what was generated, so usage is still known
    onToken: (t: readonly unknown[]) => { tokens += t.length; },
    onTextChunk: call.onText,
  };
  return { options, counted: () => tokens };
}

export const finishOf = (stop: string | undefined) => (stop === "maxTokens" ? "length" as const : "stop" as const);

function samplingOptions(s: Sampling, model: LlamaModel) {
  const penalties = s.presencePenalty || s.frequencyPenalty;
  return {
    maxTokens: s.maxTokens,
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK ?? 0, // unset: the whole vocabulary (node-llama-cpp would default to 40)
    // No seed: fresh randomness per call. node-llama-cpp's default is the current second, so identical
    // requests within one second (from anyone) would share a sample.
    seed: s.seed !== undefined ? engineSeed(s.seed) : crypto.getRandomValues(new Uint32Array(1))[0]!,
    customStopTriggers: s.stop?.length ? s.stop : undefined,
    repeatPenalty: penalties ? { presencePenalty: s.presencePenalty, frequencyPenalty: s.frequencyPenalty } : (false as const),
    tokenBias: s.logitBias?.size ? tokenBias(s.logitBias, model) : undefined,
  };
}

/**
 * Turns → node-llama-cpp history; text stays LlamaText-plain so it can never become control tokens.
 * A tool result is attached to the call it answers (node-llama-cpp's shape: the call carries its result).
 */
export function toHistory(messages: ChatTurn[], thoughts = false): ChatHistoryItem[] {
  // A call's result is a tool message after its turn and before the next assistant turn, taken in order: ids repeat
  // across turns and within one (clients and models that number calls per turn, `call_0`…), and the last result with
  // an id was written under every call of that id (fix-attack runs). None there: no result, as the template has none.
  const resultsAfter = (i: number) => {
    const byId = new Map<string | undefined, string[]>();
    for (let j = i + 1; j < messages.length && messages[j]!.role !== "assistant"; j++) {
      const t = messages[j]!;
      if (t.role === "tool") byId.set(t.toolCallId, [...byId.get(t.toolCallId) ?? [], t.content]);
    }
    return (id: string) => byId.get(id)?.shift();
  };
  const history: ChatHistoryItem[] = [];
  // Echoed thoughts count only after the last user message (the current tool-call loop), as Qwen 3's and DeepSeek-R1's
  // templates keep them; node-llama-cpp renders a thought it is given wherever it is (a fix-attack run).
  const lastUser = messages.findLastIndex((m) => m.role === "user");
  for (const [i, m] of messages.entries()) {
    if (m.role === "system") history.push({ type: "system", text: m.content });
    else if (m.role === "user") history.push({ type: "user", text: m.content });
    else if (m.role === "assistant") {
      const response: ChatModelResponse["response"] = m.content ? [m.content] : [];
      // An echoed thought goes back as the thought it was, where the model has them (its template decides what stays).
      if (thoughts && m.reasoning && i > lastUser) response.unshift({ type: "segment", segmentType: "thought", text: m.reasoning, ended: true });
      const results = m.toolCalls?.length ? resultsAfter(i) : undefined;
      for (const c of m.toolCalls ?? []) {
        // The result stays the text the client sent: the wrapper writes it as the template does (tool-results.ts).
        response.push({ type: "functionCall", name: c.name, params: jsonOr(c.arguments), result: results?.(c.id) ?? "" });
      }
      history.push({ type: "model", response });
    }
  }
  history.push({ type: "model", response: [] });
  return history;
}

/** The model's own control/special token texts (longest first), and how many tokens it has. */
export function readVocabulary(model: LlamaModel): { special: string[]; size: number } {
  const tok = (model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: string[]; token_type?: number[] } } }).tokenizer?.ggml;
  const out = new Set<string>();
  tok?.tokens?.forEach((t, i) => {
    if (SPECIAL_TYPES.has(tok.token_type?.[i] ?? 1) && t.length > 1) out.add(t);
  });
  return { special: [...out].sort((a, b) => b.length - a.length), size: tok?.tokens?.length ?? 0 };
}

/** Token ids a request gave (prompt, input, logit_bias) must exist in the vocabulary. */
export function checkTokenIds(tokens: Iterable<number>, vocabularySize: number, param: string) {
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t >= vocabularySize) {
      throw new InvalidRequestError(`Token id ${t} is not in this model's vocabulary (0-${vocabularySize - 1}).`, param);
    }
  }
}

/** OpenAI's logit_bias (-100 bans a token) as node-llama-cpp's TokenBias (logits added). */
export function tokenBias(bias: ReadonlyMap<number, number>, model: LlamaModel): TokenBias {
  const b = new TokenBias(model.tokenizer);
  const own = (b as unknown as { _biases?: unknown })._biases;
  // Its map filled directly: what set() puts there for a token id, and end-of-generation tokens too, which set()
  // skips (a ban of the end token, or +100 to end at once, OpenAI's classic use of logit_bias, was accepted and had no
  // effect). No native calls per entry (set() and an end-token check made three isEogToken): a 149-entry bias
  // (bench-peer's word-separated output) took 0.31-0.39 ms of the request's time before its first token, 0.06-0.10 ms this way.
  if (own instanceof Map) {
    for (const [token, value] of bias) own.set(token, value <= -100 ? -Infinity : value);
    return b;
  }
  // A node-llama-cpp that keeps its biases elsewhere: set() per entry, and an end token refused rather than ignored.
  for (const [token, value] of bias) {
    if (model.isEogToken(token as Token)) throw new InvalidRequestError(`logit_bias on the end token ${token} is not supported by this engine's node-llama-cpp (internals changed)`, "logit_bias");
    b.set(token as Token, value <= -100 ? "never" : { logit: value });
  }
  return b;
}

/** The token LlamaCompletion puts in front of a prompt (its resolveBeginningTokenToPrepend, not exported), or null. */
export function beginningToken(model: LlamaModel): Token | null {
  const type = model.vocabularyType;
  if (type === LlamaVocabularyType.rwkv || type === LlamaVocabularyType.ugm) return null;
  if (type === LlamaVocabularyType.wpm || model.tokens.shouldPrependBosToken) return model.tokens.bos;
  return null;
}
