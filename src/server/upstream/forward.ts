/**
 * A request for a model served by an upstream (gateway mode). By the time a
 * route calls this, the request has passed host, auth, signature, rate limit
 * and schema checks; here it passes the bounds and the prompt guard, goes to an
 * upstream through the gateway (its key, retries, breaker), and the answer
 * passes the response scanner on its way back. Log and audit lines are written
 * as for local models, with the upstream that served it among the decisions.
 */
import { includeUsage, type StreamOptions } from "../openai/convert";
import { checkEmbeddingInputs } from "../../guards/bounds";
import { AppError, InvalidRequestError, type ErrorType } from "../../errors";
import { UpstreamError } from "../../gateway/errors";
import type { AppDeps } from "../deps";
import type { RequestState } from "../request-state";
import { formatTraceparent } from "../tracing/trace-context";
import { newFrame } from "../openai/responses";
import type { ResponsesRequest } from "../openai/responses-wire";
import { guardUpstreamBody, promptList, type UpstreamRoute } from "./guard-body";
import { relayStream } from "./relay";
import { responsesAsChat } from "./responses-chat";
import { ANSWER_MAX_DEPTH, scanChoices, scanEveryString, scanResponseOutput, usageCounts } from "./scan-reply";
import { checkJsonShape } from "../../guards/json-shape";
import { isObject } from "../../util/is-object";

type Obj = Record<string, unknown>;

const PATHS: Record<UpstreamRoute, string> = {
  chat: "/chat/completions", completions: "/completions", embeddings: "/embeddings", responses: "/responses",
};

const ERROR_TYPES: readonly ErrorType[] = ["invalid_request_error", "authentication_error", "permission_error", "not_found_error", "rate_limit_error"];

/** An upstream's 4xx (the request's own fault), passed on in OpenAI's shape without anything else the upstream sent. */
function passOn(status: number, text: string | undefined, scan: (text: string) => string): AppError {
  let e: Obj = {};
  try { e = ((JSON.parse(text ?? "") as Obj).error ?? {}) as Obj; } catch { /* not JSON */ }
  const type = ERROR_TYPES.includes(e.type as ErrorType) ? e.type as ErrorType : "invalid_request_error";
  // Scanned, then cut: cut first, a key across the cut left a prefix too short for its rule (red-team run).
  const str = (v: unknown) => (typeof v === "string" ? scan(v.slice(0, 64 << 10)).slice(0, 256) : null);
  // The message through the response scanner: it may quote what the upstream's model wrote (leak run).
  return new AppError(str(e.message) ? scan(String(e.message).slice(0, 64 << 10)).slice(0, 1000) : `The upstream refused the request (HTTP ${status}).`, status, type, str(e.code), str(e.param));
}

/**
 * max_tokens as the local models get it: capped (400 above the cap) and defaulted, so limits and reservations hold.
 * Answers the field it set to the default, if it did.
 */
function boundTokens(deps: AppDeps, wire: Obj, field: "max_tokens" | "max_output_tokens"): typeof field | undefined {
  const asked = (field === "max_tokens" ? wire.max_completion_tokens ?? wire.max_tokens : wire.max_output_tokens) as number | null | undefined;
  if (asked != null && asked > deps.config.maxTokensCap) {
    throw new InvalidRequestError(`max_tokens is ${asked}; the most this server allows is ${deps.config.maxTokensCap}.`, "max_tokens", "invalid_value");
  }
  if (asked != null) return undefined;
  wire[field] = deps.config.defaultMaxTokens;
  return field;
}

/** The upstream refused because the prompt and max_tokens do not fit its context. */
function contextRefusal(status: number, text: string | undefined): boolean {
  if (status !== 400) return false;
  try { return ((JSON.parse(text ?? "") as Obj).error as Obj | undefined)?.code === "context_length_exceeded"; } catch { return false; }
}

/** The embeddings route's own bounds (guards/bounds.ts), on the body as sent. */
function embeddingBounds(deps: AppDeps, input: unknown) {
  const texts = typeof input === "string" ? [input] : typeof (input as unknown[])[0] === "number" ? [input] : input as unknown[];
  checkEmbeddingInputs(texts as (string | number[])[], deps.config);
}

/** What the upstream detokenized each token-id prompt to (undefined for text prompts); none when not read. */
async function tokenPromptTexts(deps: AppDeps, model: string, prompt: unknown, signal: AbortSignal): Promise<(string | undefined)[] | undefined> {
  if (deps.config.gateway.tokenPrompts === "forward") return undefined;
  const list = promptList(prompt);
  const ids = list.filter((p): p is number[] => Array.isArray(p));
  if (!ids.length) return undefined;
  const texts = await deps.gateway!.detokenize(model, ids, signal);
  let k = 0;
  return list.map((p) => (Array.isArray(p) ? texts[k++] : undefined));
}

/** Whether the request asks for a JSON answer (chat/completions response_format, Responses text.format): the scanner reads it as JSON. */
function jsonAnswerAsked(wire: Obj): boolean {
  const format = ((wire.response_format ?? (wire.text as Obj | undefined)?.format) ?? undefined) as Obj | undefined;
  return format?.type === "json_object" || format?.type === "json_schema";
}

export async function forwardUpstream(deps: AppDeps, request: Request, state: RequestState, route: UpstreamRoute,
  body: { model: string; stream?: boolean | null; n?: number | null; stream_options?: StreamOptions | null }): Promise<Response> {
  const gateway = deps.gateway!;
  state.model = body.model;
  // stream_options without stream is a 400 here too, as for a local model (it went to the upstream as sent)
  if (route !== "embeddings") includeUsage(body);
  const stream = route !== "embeddings" && !!body.stream;
  // Streamed chat/completions logprobs: the relay scans the text and would have to line the upstream's logprobs up with
  // it, as local streams do; not built, so refused before anything is sent (they were dropped from every chunk).
  const asked = (body as { logprobs?: unknown }).logprobs;
  if (stream && route !== "responses" && asked != null && asked !== false) {
    throw new InvalidRequestError("Streamed logprobs are not relayed from an upstream model; ask without stream, or without logprobs.", "logprobs", "unsupported_for_upstream");
  }
  if (route === "embeddings") embeddingBounds(deps, (body as unknown as { input: unknown }).input);
  const prompt = route === "completions" ? (body as unknown as { prompt: unknown }).prompt : undefined;
  const tokenTexts = route === "completions" ? await tokenPromptTexts(deps, body.model, prompt, request.signal) : undefined;
  const wire = guardUpstreamBody(deps, state, body.model, route, body, tokenTexts);
  const defaulted = route === "embeddings" ? undefined : boundTokens(deps, wire, route === "responses" ? "max_output_tokens" : "max_tokens");
  if (deps.config.logPrompts) state.promptText = JSON.stringify(wire.messages ?? wire.prompt ?? wire.input);
  // A streamed Responses request goes upstream as a chat stream (what every OpenAI-compatible server streams).
  const asChat = route === "responses" && stream;
  const jsonText = jsonAnswerAsked(wire);
  const toSend = (w: Obj) => {
    if (asChat) return responsesAsChat(w as unknown as ResponsesRequest, deps.config.limits);
    if (stream) w.stream_options = { include_usage: true }; // token counts for limits and audit; passed on only if asked
    return w;
  };
  const choices = (body.n ?? 1) * (prompt === undefined ? 1 : promptList(prompt).length);

  const flight = deps.inflight.begin(request.signal);
  let reply;
  try {
    const send = () => gateway.forward({ model: body.model, path: asChat ? PATHS.chat : PATHS[route], body: toSend(wire), stream, signal: flight.signal, requestId: state.id,
      traceparent: formatTraceparent(state.trace), clientIp: state.clientIp });
    reply = await send();
    if (defaulted && contextRefusal(reply.status, reply.text)) {
      // The client gave no max_tokens, which OpenAI reads as "as many as the context leaves"; this server's default
      // did not fit after the upstream's prompt. Asked again without it, the upstream fits what its context leaves
      // (less than the default, so within maxTokensCap), as a local model does (engine/llama-options.ts fitContext).
      delete wire[defaulted];
      reply = await send();
    }
  } catch (e) {
    flight.end();
    // Cancelled by this gateway's own shutdown before any answer came: a 503 the SDKs retry, as local requests get
    // (fix-attack run: a bodyless 499 though the client was still there).
    if (flight.signal.aborted && flight.cut()) throw flight.cut()!(); // or a lockdown's 503
    throw e;
  }
  state.decisions.push(`upstream:${reply.upstream}`);
  if (reply.status >= 400) {
    flight.end();
    throw passOn(reply.status, reply.text, (t) => deps.responseFilter(state).whole(t));
  }
  if (stream) {
    if (reply.text === undefined) {
      const frame = asChat ? newFrame("resp_" + Buffer.from(state.id.slice(4), "base64url").toString("hex"), body.model, Math.floor(deps.clock() / 1000),
        body as unknown as ResponsesRequest) : undefined;
      return relayStream(deps, state, reply, { kind: route as "chat" | "completions" | "responses", model: body.model,
        includeUsage: !!(body.stream_options as { include_usage?: boolean | null } | null | undefined)?.include_usage, choices, frame, flight, jsonText });
    }
    flight.end();
    throw new UpstreamError("The upstream answered a streaming request without a stream.");
  }
  try {
    let answer: Obj;
    // Deeper than the scans read strings (and, far deeper, than JSON.stringify can write back: a RangeError, a 500;
    // attack run): not an answer of the API.
    try { checkJsonShape(reply.text ?? "", ANSWER_MAX_DEPTH, Number.MAX_SAFE_INTEGER); } catch {
      throw new AppError(`The upstream sent an answer nested deeper than ${ANSWER_MAX_DEPTH} levels.`, 502, "server_error", "upstream_error");
    }
    try { answer = JSON.parse(reply.text ?? "") as Obj; } catch { throw new AppError("The upstream sent an answer that is not JSON.", 502, "server_error", "upstream_error"); }
    // null, a number, a string, or choices or output items that are not objects: no answer of the API (each was read as
    // one: a TypeError, a 500; red-team run), as the stream's events are refused (relay.ts).
    // choices, output and data are lists of objects where present
    const listOfObjects = (v: unknown) => v === undefined || (Array.isArray(v) && v.every(isObject));
    if (!isObject(answer) || !listOfObjects(answer.choices) || !listOfObjects(answer.output) || !listOfObjects(answer.data)) {
      throw new AppError("The upstream sent an answer that is not a JSON object of the API.", 502, "server_error", "upstream_error");
    }
    // Counts only: Infinity (1e999), a negative or a string was charged to the key's limits (429 retry-after Infinity
    // for good) and broke the metrics and the request's log and audit record (attack run).
    const usage = usageCounts(answer.usage) ?? {};
    if (answer.usage !== undefined) answer.usage = usage;
    state.promptTokens = Number(usage.prompt_tokens ?? usage.input_tokens ?? 0);
    state.completionTokens = Number(usage.completion_tokens ?? usage.output_tokens ?? 0);
    deps.settle(state);
    answer.model = body.model;
    if (route === "responses") {
      scanResponseOutput(answer, (text, json) => deps.responseFilter(state, text, json), jsonText);
      if (deps.config.logPrompts) state.responseText = JSON.stringify(answer.output);
    } else if (route !== "embeddings" && Array.isArray(answer.choices)) {
      scanChoices(answer.choices as Obj[], route as "chat" | "completions", (text, json) => deps.responseFilter(state, text, json), jsonText);
      if (deps.config.logPrompts) state.responseText = JSON.stringify(answer.choices);
    }
    // Every string the answer carries, whatever field or shape (its id, instructions, an error's message, a message
    // that is a string…).
    scanEveryString(answer, () => deps.responseFilter(state));
    return new Response(JSON.stringify(answer), { headers: { "content-type": "application/json", "x-request-id": state.id, ...state.headers } });
  } finally {
    flight.end();
  }
}
