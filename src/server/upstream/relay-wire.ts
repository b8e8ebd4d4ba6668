/**
 * What the client receives while an upstream's chat/completions stream is
 * relayed (relay.ts decides what text and calls pass the scanner; this file only
 * writes them in the client's dialect):
 *   - chat / completions: the upstream's own dialect, every chunk indexed by its choice;
 *   - responses: the Responses API's named events (the same builder local streams use,
 *     openai/responses.ts), for a Responses request sent upstream as a chat stream.
 */
import type { FinishReason, ToolCall } from "../../engine/engine";
import { responseEvents, type ResponseFrame } from "../openai/responses";

type Obj = Record<string, unknown>;

export interface RelayWire {
  /** Id/created of the upstream's events (chat and completions echo them). */
  base(ev: Obj): void;
  /** A choice appeared in the upstream's stream. */
  open(choice: number): void;
  text(choice: number, text: string): void;
  /** A piece of a reasoning model's thought (chat's `reasoning_content`), scanned like text. */
  thought(choice: number, text: string): void;
  /** The choice is over: its scanned calls (none when dropped) and its finish reason. */
  end(choice: number, reason: FinishReason, calls: ToolCall[]): void;
  /** The stream is over; `usage` as the upstream reported it. */
  finish(usage: Obj | undefined): void;
}

/** chat.completion.chunk / text_completion chunks, indexed per choice. */
export function chatWire(kind: "chat" | "completions", model: string, includeUsage: boolean, send: (ev: unknown) => void): RelayWire {
  let base: Obj = { object: kind === "chat" ? "chat.completion.chunk" : "text_completion", model };
  const chunk = (index: number, choice: Obj): Obj => ({ ...base, choices: [{ index, ...choice }] });
  return {
    // Only what the API puts there: the id (relay.ts has scanned it), the object's own name, a number (an upstream's
    // other strings here went out unscanned: attack run).
    base: (ev) => {
      base = { id: typeof ev.id === "string" ? ev.id : base.id, object: base.object, created: typeof ev.created === "number" ? ev.created : base.created, model };
    },
    open: (i) => { if (kind === "chat") send(chunk(i, { delta: { role: "assistant", content: "" }, finish_reason: null })); },
    text: (i, text) => send(kind === "chat" ? chunk(i, { delta: { content: text }, finish_reason: null }) : chunk(i, { text, finish_reason: null })),
    thought: (i, text) => { if (kind === "chat") send(chunk(i, { delta: { reasoning_content: text, reasoning: text }, finish_reason: null })); },
    end: (i, reason, calls) => {
      if (calls.length) {
        send(chunk(i, { delta: { tool_calls: calls.map((c, k) => ({ index: k, id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } })) }, finish_reason: null }));
      }
      send(kind === "chat" ? chunk(i, { delta: {}, finish_reason: reason }) : chunk(i, { text: "", finish_reason: reason }));
    },
    finish: (usage) => { if (includeUsage && usage) send({ ...base, choices: [], usage }); },
  };
}

/**
 * The Responses API's events for one answer. The head goes out at once; the end waits for the
 * upstream's usage (its last chunk, after the finish), since response.completed carries it.
 */
export function responsesWire(frame: ResponseFrame, send: (ev: unknown) => void): RelayWire & { messageId: string } {
  const events = responseEvents(frame);
  const all = (evs: unknown[]) => { for (const e of evs) send(e); };
  all(events.head());
  let done: { reason: FinishReason; calls: ToolCall[] } | undefined;
  return {
    messageId: events.messageId,
    base: () => {},
    open: () => {},
    text: (_i, text) => all(events.piece(text, 0, null)),
    thought: (_i, text) => all(events.thought(text)),
    end: (_i, reason, calls) => { done = { reason, calls }; },
    finish: (usage) => {
      const u = usage ?? {};
      const detail = (k: string, f: string) => Number((u[k] as Obj | undefined)?.[f] ?? 0); // the cached and reasoning counts too (they read 0)
      all(events.end({
        text: "", toolCalls: done!.calls.length ? done!.calls : undefined, finishReason: done!.reason,
        promptTokens: Number(u.prompt_tokens ?? 0), completionTokens: Number(u.completion_tokens ?? 0),
        cachedTokens: detail("prompt_tokens_details", "cached_tokens"), reasoningTokens: detail("completion_tokens_details", "reasoning_tokens"),
      }));
    },
  };
}
