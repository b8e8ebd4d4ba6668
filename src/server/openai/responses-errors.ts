/**
 * The Responses API route turns its request into a chat request (responses.ts) and runs the chat path, whose
 * refusals name chat fields: an over-long `input` was a 400 naming `messages`, a bad `text.format` schema named
 * `response_format.json_schema.schema…`. This renames them to the fields the client sent.
 */
import { AppError } from "../../errors";

/** Chat field → Responses field, longest first (a prefix is replaced, the rest of the path kept). */
const PARAMS: [RegExp, string][] = [
  [/^response_format\.json_schema\.schema/, "text.format.schema"],
  [/^response_format/, "text.format"],
  [/^messages/, "input"],
  [/^max_tokens/, "max_output_tokens"],
  [/^(tools\[\d+\])\.function/, "$1"],
  [/^tool_choice\.allowed_tools\.(tools(?:\[\d+\]|\.\d+))\.function/, "tool_choice.$1"],
  [/^tool_choice\.function/, "tool_choice"],
];
const WORDS: [RegExp, string][] = [[/\bresponse_format\b/g, "text.format"], [/\bmax_tokens\b/g, "max_output_tokens"]];

/** `e` with chat field names replaced by the Responses API's; anything else unchanged. */
export function asResponsesError(e: unknown): unknown {
  if (!(e instanceof AppError) || e.status !== 400) return e;
  const param = e.param && PARAMS.reduce((p, [from, to]) => p.replace(from, to), e.param);
  const message = WORDS.reduce((m, [from, to]) => m.replace(from, to), e.message);
  if (param === e.param && message === e.message) return e;
  return new AppError(message, e.status, e.type, e.code, param, e.headers);
}
