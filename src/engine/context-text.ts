/**
 * The text of released completion tokens, detokenized after the prompt they follow.
 *
 * Why: node-llama-cpp's LlamaCompletion detokenizes its output with nothing before it, so a SentencePiece model's
 * first generated token loses its leading space (" hello" came out as "hello"; llama-server, which writes each
 * token's own piece, sends " hello"). Text built here from the same tokens, with the prompt's tail as context,
 * keeps what the tokens really spell; logprob token strings use the same context, so they still spell the text.
 */
import type { LlamaModel, Token } from "node-llama-cpp";

/** Tokens of context each chunk is detokenized after (as in logprobs.ts and token-tally.ts). */
export const TEXT_CONTEXT = 8;

/**
 * `context`: the tokens evaluated before the generation (the prompt, BOS included). Call `push` with each batch
 * of tokens node-llama-cpp releases (its onToken); the chunk's text goes to `onText` (the answer's text is kept by
 * stop-text.ts, which it feeds).
 */
export function contextText(model: LlamaModel, context: readonly Token[], onText?: (text: string) => void) {
  const recent: Token[] = context.slice(-TEXT_CONTEXT);
  return {
    push(tokens: readonly Token[]) {
      if (!tokens.length) return;
      const chunk = model.detokenize(tokens, false, recent);
      recent.push(...tokens);
      recent.splice(0, Math.max(0, recent.length - TEXT_CONTEXT));
      if (chunk) onText?.(chunk);
    },
  };
}
