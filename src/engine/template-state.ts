/**
 * A chat wrapper's rendered context state (what `generateContextState` returns: LlamaText values inside plain
 * objects and arrays) as JSON and back, so that the template worker can render it and the engine use it.
 * LlamaText values travel as their own JSON form under a marker key; everything else is plain data.
 */
import { LlamaText, isLlamaText, type ChatWrapperGeneratedContextState } from "node-llama-cpp";

const MARK = "$llamaText";

/**
 * The synchronous worker's buffer (template-sync.ts): Int32 slots, then the answer's UTF-8 bytes. READY is 1 once
 * the wrapper is built; DONE holds the id of the last answered job; STATUS says what the bytes are; LENGTH how many.
 */
export const SLOT = { READY: 0, DONE: 1, STATUS: 2, LENGTH: 3 } as const;
export const HEADER_BYTES = 16;
export const STATUS = { OK: 0, ERROR: 1, TOO_LONG: 2 } as const;

/** JSON text of a rendered state. */
export function stateToJson(state: ChatWrapperGeneratedContextState): string {
  // JSON.stringify calls toJSON before the replacer sees a value: look at the holder's original instead.
  return JSON.stringify(state, function (this: Record<string, unknown>, k: string, v: unknown) {
    const original = this[k];
    return isLlamaText(original) ? { [MARK]: original.toJSON() } : v;
  });
}

/** The state back, its LlamaText values rebuilt (special tokens included). */
export function stateFromJson(json: string): ChatWrapperGeneratedContextState {
  return JSON.parse(json, (_k, v: unknown) => (v && typeof v === "object" && MARK in v ? LlamaText.fromJSON((v as Record<string, Parameters<typeof LlamaText.fromJSON>[0]>)[MARK]!) : v));
}
