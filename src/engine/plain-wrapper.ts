/**
 * The chat wrapper for chats without tools, where node-llama-cpp's own differs from the model's template there.
 *
 * Why: node-llama-cpp renders every Llama 3.1+ GGUF with its built-in Llama 3.1 format (judged the same as the
 * template on chats without tools), built with its tool instructions on, so every chat, tools or not, got
 * "# Tool Instructions - When looking for real time information use relevant functions if available" in its system
 * preamble: lines Meta's template never writes (a fix-attack run, against llama-server's /apply-template). Chats
 * with tools keep node-llama-cpp's format (Meta's documented custom-tool form), instructions and all. Without the
 * instructions the preamble also lost the blank line Meta's template ends it with, and node-llama-cpp writes the day
 * unpadded ("2 Dec 2026" for the template's strftime "%d", "02 Dec 2026"): both as the template writes them here.
 */
import { Llama3_1ChatWrapper, Llama3_2LightweightChatWrapper, LlamaText, SpecialTokensText, type ChatHistoryItem, type ChatWrapper } from "node-llama-cpp";

type Llama3Options = ConstructorParameters<typeof Llama3_1ChatWrapper>[0] & { _specialTokensTextForPreamble?: boolean };
type Llama3Kind = typeof Llama3_1ChatWrapper | typeof Llama3_2LightweightChatWrapper;

/** The preamble as the template writes it: the day padded, and a blank line after it when no system message follows. */
function templatePreamble(text: string, alone: boolean): string {
  return text.replace(/^Today Date: (\d) /m, "Today Date: 0$1 ") + (alone ? "\n\n" : "");
}

function plainKind<K extends Llama3Kind>(Kind: K): K {
  // The subclass keeps the class's name and checks (instanceof); only the preamble's text changes. With the tool
  // instructions (chats with tools) the preamble already ends in a blank line: only the day is padded there.
  return class extends (Kind as typeof Llama3_1ChatWrapper) {
    override prependPreambleToChatHistory(chatHistory: readonly ChatHistoryItem[]): readonly ChatHistoryItem[] {
      const res = super.prependPreambleToChatHistory(chatHistory);
      const first = res[0];
      if (res.length !== chatHistory.length + 1 || first?.type !== "system") return res; // no preamble written
      const alone = chatHistory[0]?.type !== "system" && this.noToolInstructions;
      const values = LlamaText.fromJSON(first.text).values.map((v) =>
        typeof v === "string" ? templatePreamble(v, alone) : v instanceof SpecialTokensText ? new SpecialTokensText(templatePreamble(v.value, alone)) : v);
      return [{ ...first, text: LlamaText(values).toJSON() }, ...res.slice(1)];
    }
  } as unknown as K;
}

const PLAIN = new Map<Llama3Kind, Llama3Kind>([[Llama3_1ChatWrapper, plainKind(Llama3_1ChatWrapper)], [Llama3_2LightweightChatWrapper, plainKind(Llama3_2LightweightChatWrapper)]]);

/**
 * node-llama-cpp's Llama 3.1 format with the template's preamble: for chats without tools (`tools` false) without the
 * tool instructions; with tools (true) as resolved, the day padded. Undefined for any other wrapper.
 */
export function llama3Wrapper(wrapper: ChatWrapper, tools: boolean): ChatWrapper | undefined {
  for (const [Kind, Plain] of PLAIN) {
    if (!(wrapper instanceof Kind)) continue;
    const w = wrapper as Llama3_1ChatWrapper & { _specialTokensTextForPreamble?: boolean };
    const options: Llama3Options = { cuttingKnowledgeDate: w.cuttingKnowledgeDate, todayDate: w.todayDate,
      noToolInstructions: tools ? w.noToolInstructions : true, _specialTokensTextForPreamble: w._specialTokensTextForPreamble };
    return new Plain(options);
  }
  return undefined;
}
