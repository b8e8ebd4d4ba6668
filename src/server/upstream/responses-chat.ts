/**
 * A streamed Responses API request for an upstream model, as the chat
 * completions stream every OpenAI-compatible server has (llama-server, vLLM,
 * another appliance): the same request → turns/tools/sampling mapping local
 * models use (openai/responses.ts), written back in chat-completions wire form.
 * relay.ts then turns the chat stream back into Responses events.
 */
import { InvalidRequestError } from "../../errors";
import type { JsonBounds } from "../../guards/json-shape";
import { asChatRequest, responsesTurns } from "../openai/responses";
import type { ResponsesRequest } from "../openai/responses-wire";

type Obj = Record<string, unknown>;

/** The chat-completions body for a (prompt-guarded, token-bounded) Responses request; `stream` and usage on. */
export function responsesAsChat(req: ResponsesRequest, bounds: JsonBounds): Obj {
  const chat = asChatRequest(req);
  if (chat.logprobs) {
    // The chat stream's logprobs would have to be lined up with the scanned text as local streams do; not built for upstreams.
    throw new InvalidRequestError("Logprobs in a streamed Responses answer are not available for upstream models: stream without them, or use stream: false.",
      req.top_logprobs != null ? "top_logprobs" : "include", "unsupported_for_upstream");
  }
  // An echoed thought (a reasoning input item) goes up as chat's reasoning_content, as a stream:false request forwards it.
  const messages = responsesTurns(req, bounds).map((t): Obj => {
    const thought = t.reasoning ? { reasoning_content: t.reasoning } : {};
    if (t.role === "tool") return { role: "tool", content: t.content, tool_call_id: t.toolCallId };
    if (t.toolCalls?.length) {
      return { role: "assistant", content: t.content || null, ...thought,
        tool_calls: t.toolCalls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } })) };
    }
    return { role: t.role, content: t.content, ...thought };
  });
  const body: Obj = {
    model: req.model, messages, max_tokens: chat.max_tokens, temperature: chat.temperature, top_p: chat.top_p,
    response_format: chat.response_format, tools: chat.tools, tool_choice: chat.tool_choice, parallel_tool_calls: chat.parallel_tool_calls,
    reasoning_effort: chat.reasoning_effort, // "none" (reasoning.effort): the upstream answers without a thought
    stream: true, stream_options: { include_usage: true },
  };
  for (const k of Object.keys(body)) if (body[k] == null) delete body[k]; // left out, not null: some servers refuse null
  return body;
}
