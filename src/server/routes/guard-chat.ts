/**
 * The prompt guard over everything a chat request puts into the prompt: the
 * messages, and also the tool definitions (name, description, parameters) and
 * the names and arguments of earlier calls and echoed thoughts, which the template renders as text too. A
 * "strip" rule's edits are written back where the text came from.
 */
import type { ChatTurn, ToolUse } from "../../engine/engine";
import type { AppDeps } from "../deps";
import type { RequestState } from "../request-state";
import { decodedJson } from "../../guards/decoded-json";

export function guardChat(deps: AppDeps, state: RequestState, model: string, turns: ChatTurn[], tools: ToolUse | undefined) {
  const texts: { set: (text: string) => void; text: string }[] = [];
  const defs = tools?.tools.map((t) => ({ ...t })) ?? [];
  for (const t of defs) {
    texts.push({ text: t.description ?? "", set: (v) => { t.description = v; } });
    if (t.parameters) texts.push({ text: JSON.stringify(t.parameters), set: (v) => { try { t.parameters = JSON.parse(v); } catch { /* a strip broke it: keep it */ } } });
  }
  const calls = turns.flatMap((m) => m.toolCalls ?? []).map((c) => ({ ...c }));
  for (const c of calls) {
    // The name too: the schema bounds only its length (chat tool_calls, function_call, Responses function_call
    // items), and the template writes it into the prompt beside the arguments.
    texts.push({ text: c.name, set: (v) => { c.name = v; } });
    // Read decoded, as the template writes them; written back only when a strip changed them.
    const args = decodedJson(c.arguments);
    texts.push({ text: args, set: (v) => { if (v !== args) c.arguments = v; } });
  }
  // An echoed thought is rendered by templates that keep thoughts: prompt text like the rest.
  const thoughts = turns.map((m) => m.reasoning);
  thoughts.forEach((t, i) => { if (t !== undefined) texts.push({ text: t, set: (v) => { thoughts[i] = v; } }); });
  const guarded = deps.promptGuard(state, model, [...turns, ...texts.map((t) => ({ role: "system" as const, content: t.text }))], turns.length);
  guarded.slice(turns.length).forEach((g, i) => texts[i]!.set(g.content));
  let next = 0;
  const messages = guarded.slice(0, turns.length).map((m, i) => {
    const out = m.toolCalls ? { ...m, toolCalls: m.toolCalls.map(() => calls[next++]!) } : m;
    return thoughts[i] !== undefined ? { ...out, reasoning: thoughts[i] } : out;
  });
  return { messages, tools: tools && { ...tools, tools: defs } };
}
