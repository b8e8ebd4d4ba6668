/**
 * The ONE error → HTTP mapper. Every failure leaves the server as
 * {"error":{"message","type","param","code"}}; anything unexpected becomes a
 * generic 500 that names only the request id (no stack, no paths, no internals).
 */
import { AppError, MissingParameterError, paramPath } from "../errors";
import type { Logger } from "../log/logger";

export interface ErrorBody { error: { message: string; type: string; param: string | null; code: string | null } }

/** The one OpenAI error body of an AppError: for a response, and for the error event of a stream that already started. */
export const errorBodyOf = (e: Pick<AppError, "message" | "type" | "param" | "code">): ErrorBody =>
  ({ error: { message: e.message, type: e.type, param: e.param, code: e.code } });

export function errorResponse(status: number, body: ErrorBody, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

interface ValidationIssue {
  path?: (string | number)[] | string; message?: string; summary?: string; code?: string; keys?: unknown[];
  origin?: string; expected?: string; errors?: ValidationIssue[][]; note?: string; discriminator?: string; minimum?: unknown;
}

/**
 * A path as OpenAI writes it: indices in brackets, names after dots (`messages[1].content`); a name that is not a
 * plain identifier (a token id in logit_bias, a key with a dot) quoted in brackets (`logit_bias["12"]`), so it is
 * never read as an index.
 */
function pathText(path: (string | number)[]): string {
  // A name is echoed up to 64 characters: a 100,000-character unknown key came back twice in a 200 KB error.
  const name = (k: string) => (k.length > 64 ? `${k.slice(0, 64)}…` : k);
  return path.map((k, i) => (typeof k === "number" ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) && k.length <= 64 ? (i ? `.${k}` : k) : `[${JSON.stringify(name(k))}]`)).join("");
}

/**
 * A union's issue narrowed to the branch the value was meant for: the branch that took the value's type and
 * failed further in (`{"type":"text","text":5}` as chat content: the parts array, at `[0].text`), its issue with
 * the whole path; the union's own issue where no one branch stands out (zod says only "Invalid input").
 */
function narrowed(issue: ValidationIssue): ValidationIssue {
  // Only where zod had nothing to say: a union given its own message (completions' prompt) keeps it.
  for (let depth = 0; issue.code === "invalid_union" && issue.message === "Invalid input" && issue.errors?.length && depth < 8; depth++) {
    // Branches that took the value's type and its tag (a branch whose own `type` literal did not match was not meant).
    const further = issue.errors.filter((b) => b.length > 0 && b.every((i) => Array.isArray(i.path) && i.path.length > 0)
      && !b.some((i) => i.code === "invalid_value" && (i.path as unknown[]).length === 1 && (i.path as unknown[])[0] === "type"));
    // Several got further (a Responses input item: a message with a bad content, which a function call item fails
    // on every field): the one with the fewest faults, if one has fewer than all others.
    const fewest = Math.min(...further.map((b) => b.length));
    const best = further.filter((b) => b.length === fewest);
    if (best.length !== 1) break;
    const inner = best[0]![0]!;
    issue = { ...inner, path: [...(Array.isArray(issue.path) ? issue.path : []), ...(inner.path as (string | number)[])] };
  }
  return issue;
}

/** Parameters whose numbers are integers (OpenAI's integer_* codes); every other number is a decimal. */
const INTEGER_PARAMS = new Set(["n", "max_tokens", "max_completion_tokens", "max_output_tokens", "top_logprobs", "logprobs", "seed",
  "best_of", "dimensions", "top_k"]);

/** A JSON value's kind as OpenAI's messages name it ("got an object instead", "got a decimal number instead"). */
const kindOf = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object"
  : typeof v === "number" && !Number.isInteger(v) ? "a decimal number" : `a ${typeof v}`);
/** zod's name for an expected type in OpenAI's words ("int" read "expected int, but got a number"). */
const typeName = (t: string) => (t === "int" ? "an integer" : `${/^[aeiou]/.test(t) ? "an" : "a"} ${t}`);

/**
 * A union none of whose branches got past the value itself (each branch's fault is the value's own type, or a
 * literal it is not): the types and the literals (quoted) the branches take; undefined where some branch got
 * further in (its own issue says more).
 */
function unionOwn(issue: ValidationIssue): { types: string[]; literals: string[] } | undefined {
  if (issue.code !== "invalid_union" || !issue.errors?.length) return undefined;
  const types = new Set<string>(), literals = new Set<string>();
  for (const branch of issue.errors) {
    if (!branch.length || branch.some((i) => (Array.isArray(i.path) ? i.path.length : 0) > 0)) return undefined;
    for (const i of branch) {
      const values = (i as { values?: unknown[] }).values;
      if (i.code === "invalid_value" && Array.isArray(values)) for (const v of values) literals.add(JSON.stringify(v).replaceAll('"', "'"));
      else if (i.code === "invalid_type" && i.expected) types.add(i.expected);
      else return undefined;
    }
  }
  return { types: [...types], literals: [...literals] };
}

/** A union of tagged shapes every one of which refused the value's `type`: the tags they take (quoted), else undefined. */
function unionTags(issue: ValidationIssue): string[] | undefined {
  if (issue.code !== "invalid_union" || !issue.errors?.length) return undefined;
  const tags: string[] = [];
  for (const branch of issue.errors) {
    const tag = branch.find((i) => i.code === "invalid_value" && Array.isArray(i.path) && i.path.length === 1 && i.path[0] === "type");
    const values = (tag as { values?: unknown[] } | undefined)?.values;
    if (!Array.isArray(values)) return undefined;
    tags.push(...values.map((v) => `'${String(v)}'`));
  }
  return [...new Set(tags)];
}

/**
 * OpenAI's code for a zod issue (the codes its API answers a bad value with: invalid_type, invalid_value,
 * decimal_above_max_value, string_above_max_length, array_below_min_length…); invalid_request where it has none.
 */
function issueCode(issue: ValidationIssue, value: unknown): string {
  switch (issue.code) {
    // A field held to null with its own message is one this server does not do (suffix: "suffix is not supported"):
    // not the value's type at fault (newcomer run).
    case "invalid_type": return issue.expected === "null" && !issue.message?.startsWith("Invalid input") ? "unsupported_parameter" : "invalid_type";
    case "invalid_union":
      if (issue.note === "No matching discriminator") return "invalid_value"; // a message's role, a part's type
      if (unionOwn(issue)?.literals.length === 0) return "invalid_type";
      return issue.message && issue.message !== "Invalid input" ? "invalid_value" : "invalid_request"; // a union with its own rule (stop, prompt)
    case "invalid_value": case "invalid_enum_value": case "invalid_literal": return "invalid_value";
    case "too_big": case "too_small": {
      const side = issue.code === "too_big" ? "above_max" : "below_min";
      const name = Array.isArray(issue.path) ? issue.path.at(-1) : undefined;
      if (issue.origin === "number" || issue.origin === "bigint") return `${typeof name === "string" && INTEGER_PARAMS.has(name) ? "integer" : "decimal"}_${side}_value`;
      if (issue.origin === "array" && issue.code === "too_small" && Array.isArray(value) && value.length === 0) return "empty_array";
      if (issue.origin === "string" || issue.origin === "array") return `${issue.origin}_${side}_length`;
      return "invalid_value";
    }
    case "invalid_format": return "invalid_value";
    case "custom": return "invalid_value"; // a refine's own rule (at most 4 stop strings, a prompt's shape): the value is not taken
    default: return "invalid_request";
  }
}

/** The value at a path in a parsed body (undefined where any step is missing). */
function valueAt(value: unknown, at: (string | number)[]): unknown {
  let v = value;
  for (const k of at) v = v !== null && typeof v === "object" ? (v as Record<string | number, unknown>)[k] : undefined;
  return v;
}

/** Elysia's ValidationError (422) carries zod issues: turn the first into OpenAI's 400 naming the param. */
function fromValidation(err: { valueError?: ValidationIssue; all?: ValidationIssue[]; type?: string }): AppError {
  const issue = narrowed(err.valueError ?? err.all?.[0] ?? {});
  const at = Array.isArray(issue.path) ? pathText(issue.path) : paramPath(issue.path && issue.path !== "root" ? String(issue.path) : "");
  const where = err.type && err.type !== "body" ? ` in ${err.type}` : "";
  if (issue.code === "unrecognized_keys" && typeof issue.keys?.[0] === "string") {
    // the field itself is the param (it was null: an SDK's error named nothing), in OpenAI's words; a top-level one
    // as it was sent ("foo bar", not the path form ["foo bar"]: red-team run)
    const path = Array.isArray(issue.path) ? issue.path : [];
    const key = issue.keys[0];
    const param = path.length ? pathText([...path, key]) : key.length > 64 ? `${key.slice(0, 64)}…` : key;
    return new AppError(`Unrecognized request argument supplied: ${param}${where}`, 400, "invalid_request_error", "unknown_parameter", param);
  }
  // A required field not sent at all: OpenAI's words and code (zod said "Invalid input" for a union such as input).
  const value = (err as { value?: unknown }).value;
  if (at && Array.isArray(issue.path) && value !== null && typeof value === "object" && valueAt(value, issue.path) === undefined) {
    return new MissingParameterError(at, where);
  }
  const message = issue.message ?? issue.summary ?? "invalid request";
  const sent = Array.isArray(issue.path) && value !== null && typeof value === "object" ? valueAt(value, issue.path) : undefined;
  // Only where zod had nothing to say: a union given its own message (prompt's) keeps it.
  const own = at && message === "Invalid input" ? unionOwn(issue) : undefined;
  if (own && !own.literals.length) { // zod says "Invalid input"; OpenAI names what is taken and what was sent
    return new AppError(`Invalid type for '${at}'${where}: expected one of ${own.types.join(", ")}, but got ${kindOf(sent)} instead.`, 400,
      "invalid_request_error", "invalid_type", at);
  }
  const tags = at && message === "Invalid input" ? unionTags(issue) : undefined;
  if (tags) { // every branch refused its type tag: an item type this server does not take (a hosted tool's call)
    return new AppError(`Invalid value for '${at}.type'${where}: expected one of ${tags.join(", ")}; '${String((sent as { type?: unknown } | undefined)?.type ?? "")}' is not taken here (hosted tools' items are not supported).`,
      400, "invalid_request_error", "invalid_value", `${at}.type`);
  }
  if (own) { // a union of literals and shapes (tool_choice "sometimes"): what it takes, in OpenAI's words
    return new AppError(`Invalid value for '${at}'${where}: expected one of ${[...own.literals, ...own.types.map(typeName)].join(", ")}.`, 400,
      "invalid_request_error", "invalid_value", at);
  }
  if (at && issue.code === "invalid_type" && issue.expected && message.startsWith("Invalid input: expected")) { // not a field's own message
    return new AppError(`Invalid type for '${at}'${where}: expected ${typeName(issue.expected)}, but got ${kindOf(sent)} instead.`, 400,
      "invalid_request_error", "invalid_type", at);
  }
  return new AppError(at ? `Invalid '${at}'${where}: ${message}` : `Invalid request body: ${message}`, 400,
    "invalid_request_error", issueCode(issue, sent), at || null);
}

/** Maps anything thrown to an AppError; logs the unexpected ones with their stack, server-side only. */
export function toAppError(code: string | number, error: unknown, requestId: string, log: Logger): AppError {
  if (error instanceof AppError) return error;
  // Elysia wraps whatever a parser throws (our size and JSON errors included) in its ParseError.
  const cause = (error as { cause?: unknown })?.cause;
  if (cause instanceof AppError) return cause;
  switch (code) {
    case "VALIDATION": return fromValidation(error as never);
    case "PARSE": return new AppError("We could not parse the JSON body of your request. Send valid JSON with Content-Type: application/json.",
      400, "invalid_request_error", "invalid_json");
    case "NOT_FOUND": return new AppError("Unknown route.", 404, "invalid_request_error", "unknown_route");
    case "INVALID_COOKIE_SIGNATURE": return new AppError("Invalid cookie.", 400, "invalid_request_error", "invalid_cookie");
  }
  const status = (error as { status?: unknown })?.status;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return new AppError(status === 413 ? "Request body too large." : "Bad request.", status, "invalid_request_error", null);
  }
  log.error({ reqId: requestId, err: error }, "unhandled error");
  return new AppError(`The server had an error while processing your request (request id ${requestId}).`, 500, "server_error", "internal_error");
}

/** For failures with no request state to hang on to (Bun.serve's `error` handler). */
export function lastResortResponse(requestId: string): Response {
  return errorResponse(500, errorBodyOf({ message: `The server had an error while processing your request (request id ${requestId}).`,
    type: "server_error", param: null, code: "internal_error" }), { "x-request-id": requestId });
}

export function toResponse(e: AppError, extraHeaders: Record<string, string> = {}): Response {
  return errorResponse(e.status, errorBodyOf(e), { ...extraHeaders, ...e.headers });
}
