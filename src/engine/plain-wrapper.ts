/**
 * The chat wrapper for chats without tools, where node-llama-cpp's own differs from the model's template there.
 *
 * Why: node-llama-cpp renders every Llama 3.1+ GGUF with its built-in Llama 3.1 format (judged the same as the
 * template on chats without tools), built with its tool instructions on, so every chat, tools or not, got
 * "# Tool Instructions - When looking for real time information use relevant functions if available" in its system
 * preamble: lines Meta's template never writes (a fix-attack run, against llama-server's /apply-template). Chats
 * with tools keep node-llama-cpp's format (Meta's documented custom-tool format), instructions and all.
 */
import { Llama3_1ChatWrapper, Llama3_2LightweightChatWrapper, type ChatWrapper } from "node-llama-cpp";

type Llama3Options = ConstructorParameters<typeof Llama3_1ChatWrapper>[0] & { _specialTokensTextForPreamble?: boolean };

/** The same wrapper without tool instructions; undefined where the resolved one needs no other. */
export function plainWrapper(wrapper: ChatWrapper): ChatWrapper | undefined {
  for (const Kind of [Llama3_1ChatWrapper, Llama3_2LightweightChatWrapper]) {
    if (!(wrapper instanceof Kind) || wrapper.noToolInstructions) continue;
    const w = wrapper as Llama3_1ChatWrapper & { _specialTokensTextForPreamble?: boolean };
    const options: Llama3Options = { cuttingKnowledgeDate: w.cuttingKnowledgeDate, todayDate: w.todayDate, noToolInstructions: true,
      _specialTokensTextForPreamble: w._specialTokensTextForPreamble };
    return new Kind(options);
  }
  return undefined;
}
