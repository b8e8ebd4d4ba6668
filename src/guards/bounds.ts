/**
 * Input bounds beyond what the wire schema can say on its own: how many
 * messages and how much prompt text one request may carry. (Per-field ranges
 * live in server/openai/wire.ts; max_tokens against the context in convert.ts.)
 */
import type { Config } from "../config/schema";
import type { ChatTurn } from "../engine/engine";
import { InvalidRequestError } from "../errors";

/**
 * Choices one request may ask for (n, times the prompts of a completions request): each is a full generation. Here,
 * not in the wire schemas, because the token reservation (body.ts) counts them before the schema is read.
 */
export const MAX_CHOICES = 16;

type Limits = Pick<Config, "maxMessages" | "maxPromptChars">;
type EmbeddingLimits = Pick<Config, "maxEmbeddingInputs" | "maxPromptChars">;

/**
 * `messages`: how many of `turns` are messages (the rest: tool definitions, call arguments, each its own text);
 * `param`: the request field the prompt came in (a completions request's is `prompt`).
 */
export function checkBounds(turns: ChatTurn[], limits: Limits, messages = turns.length, param = "messages") {
  if (messages > limits.maxMessages) {
    throw new InvalidRequestError(`Too many messages: ${messages} (max ${limits.maxMessages}).`, "messages", "too_many_messages");
  }
  checkChars("Prompt", turns.reduce((n, t) => n + t.content.length, 0), limits.maxPromptChars, param, "prompt_too_long");
}

/** The same bounds for embeddings inputs (text or token ids), in that API's own terms (checkBounds would name `messages`). */
export function checkEmbeddingInputs(texts: readonly (string | number[])[], limits: EmbeddingLimits) {
  // Its own bound: maxMessages (256) refused LangChain's default batch of 512 documents, where OpenAI takes 2,048.
  if (texts.length > limits.maxEmbeddingInputs) {
    throw new InvalidRequestError(`Too many inputs: ${texts.length} (max ${limits.maxEmbeddingInputs}).`, "input", "too_many_inputs");
  }
  checkChars("Input", texts.reduce((n, t) => n + t.length, 0), limits.maxPromptChars, "input", "input_too_long");
}

/** `what` is at most `max` characters: a 400 naming `param` otherwise. */
export function checkChars(what: string, chars: number, max: number, param: string, code: string) {
  if (chars > max) throw new InvalidRequestError(`${what} is ${chars} characters (max ${max}).`, param, code);
}
