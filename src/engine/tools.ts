/**
 * Tool calling. With choice "auto" the model decides, through node-llama-cpp's
 * function calling (the chat template's own syntax). A "required" or named
 * choice is forced with a grammar instead: the model must write one call as
 * JSON matching the tool's parameters, so the answer is a call whatever the
 * model (the tiny test model included), as llama-server and vLLM do.
 */
import type { ChatModelFunctions } from "node-llama-cpp";
import type { ChatTurn, ToolCall, ToolChoice, ToolSpec } from "./engine";

const ANY_OBJECT = { type: "object", additionalProperties: true };

/** A fresh call id in OpenAI's shape. */
export const newCallId = () => "call_" + Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("base64url");

/** node-llama-cpp's function definitions, for choice "auto". */
export function chatFunctions(tools: ToolSpec[]): ChatModelFunctions {
  return Object.fromEntries(tools.map((t) => [t.name, { description: t.description, params: (t.parameters ?? ANY_OBJECT) as never }]));
}

/** The tools a forced choice may call. */
function candidates(tools: ToolSpec[], choice: Exclude<ToolChoice, "auto">): ToolSpec[] {
  return choice === "required" ? tools : tools.filter((t) => t.name === choice.name);
}

/** The JSON schema a forced call must match: `{"name": ..., "arguments": {...}}`, one of the candidates. */
export function forcedCallSchema(tools: ToolSpec[], choice: Exclude<ToolChoice, "auto">): Record<string, unknown> {
  const one = (t: ToolSpec) => ({
    type: "object",
    properties: { name: { const: t.name }, arguments: t.parameters ?? ANY_OBJECT },
    required: ["name", "arguments"],
  });
  const list = candidates(tools, choice);
  return list.length === 1 ? one(list[0]!) : { oneOf: list.map(one) };
}

/**
 * tool_choice "auto" beside a JSON answer format (`answer`: its schema, none for json_object): one grammar for the
 * answer or a call to any of the tools, told apart by call-gate.ts.
 */
export function callOrAnswerSchema(tools: ToolSpec[], answer: Record<string, unknown> | undefined): Record<string, unknown> {
  const calls = forcedCallSchema(tools, "required");
  return { oneOf: [...(Array.isArray(calls.oneOf) ? calls.oneOf : [calls]), answer ?? ANY_OBJECT] };
}

/**
 * A system turn telling the model which tools exist (the grammar paths have no template support to lean on);
 * `optional`: the callOrAnswerSchema path, where the model may answer instead.
 */
export function toolsTurn(tools: ToolSpec[], choice: Exclude<ToolChoice, "auto">, optional = false): ChatTurn {
  const docs = candidates(tools, choice).map((t) =>
    `- ${t.name}${t.description ? `: ${t.description}` : ""}\n  arguments (JSON schema): ${JSON.stringify(t.parameters ?? ANY_OBJECT)}`);
  const how = optional
    ? `To call one of these tools, answer with {"name": <tool>, "arguments": <arguments>} only; otherwise answer in the JSON asked for.`
    : `Call one of these tools. Answer with {"name": <tool>, "arguments": <arguments>} only.`;
  return { role: "system", content: `${how}\n${docs.join("\n")}` };
}

/** The forced answer as a call; undefined when it is not one (generation cut off by max_tokens). */
export function parseForcedCall(text: string): ToolCall | undefined {
  try {
    const v = JSON.parse(text) as { name?: unknown; arguments?: unknown };
    if (typeof v.name !== "string") return undefined;
    return { id: newCallId(), name: v.name, arguments: JSON.stringify(v.arguments ?? {}) };
  } catch {
    return undefined;
  }
}
