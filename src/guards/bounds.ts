/**
 * Input bounds beyond what the wire schema can say on its own: how many
 * messages and how much prompt text one request may carry. (Per-field ranges
 * live in server/openai/wire.ts; max_tokens against the context in convert.ts.)
 */
import type { Config } from "../config/schema";
import type { ChatTurn } from "../engine/engine";
import { InvalidRequestError } from "../errors";

export function checkBounds(turns: ChatTurn[], limits: Pick<Config, "maxMessages" | "maxPromptChars">) {
  if (turns.length > limits.maxMessages) {
    throw new InvalidRequestError(`Too many messages: ${turns.length} (max ${limits.maxMessages}).`, "messages", "too_many_messages");
  }
  const total = turns.reduce((n, t) => n + t.content.length, 0);
  if (total > limits.maxPromptChars) {
    throw new InvalidRequestError(`Prompt is ${total} characters (max ${limits.maxPromptChars}).`, "messages", "prompt_too_long");
  }
}
