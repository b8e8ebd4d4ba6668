/**
 * Small named errors carrying their HTTP status and OpenAI type/code. Engine,
 * guards and routes throw these; server/errors.ts is the one place that turns
 * them (and anything else) into an HTTP response.
 */
export type ErrorType = "invalid_request_error" | "authentication_error" | "permission_error" | "not_found_error"
  | "rate_limit_error" | "server_error" | "service_unavailable";

/**
 * A parameter's path as OpenAI writes it in `param` and in messages: array indices in brackets
 * (`messages[1].content`, not `messages.1.content`). Paths are built with dots throughout; this is the one spelling.
 */
export const paramPath = (at: string) => at.replace(/\.(\d+)(?=\.|\[|$)/g, "[$1]");

export class AppError extends Error {
  /** The parameter at fault, in OpenAI's spelling (paramPath), or null. */
  readonly param: string | null;

  constructor(
    message: string,
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string | null = null,
    param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
    this.param = param === null ? null : paramPath(param);
  }
}

export class InvalidRequestError extends AppError {
  constructor(message: string, param: string | null = null, code: string | null = "invalid_request") {
    super(message, 400, "invalid_request_error", code, param);
  }
}

/** A required field not sent at all, in OpenAI's words and code. */
export class MissingParameterError extends AppError {
  constructor(param: string, where = "") {
    super(`Missing required parameter: '${paramPath(param)}'${where}.`, 400, "invalid_request_error", "missing_required_parameter", param);
  }
}

export class ModelNotFoundError extends AppError {
  constructor(model: string) {
    // Named as sent, up to a model name's length (the body schemas' 256): GET /v1/models/{id} takes any path.
    const shown = model.length > 256 ? `${model.slice(0, 256)}…` : model;
    super(`The model '${shown}' does not exist or you do not have access to it.`, 404, "invalid_request_error", "model_not_found", "model");
  }
}

/**
 * OpenAI's message, with its exact counts. `atLeast`: the prompt was refused on a count that stopped once it could not
 * fit (engine/long-text.ts: a long prompt is not tokenized whole), so its numbers are lower bounds and say so; a client
 * that trims by them must not read them as exact (peer-fidelity run: 2731 was reported for a 12,001-token prompt).
 */
export class ContextLengthError extends AppError {
  constructor(limit: number, prompt: number, maxTokens: number, param: "messages" | "prompt" = "messages", atLeast = false) {
    const least = atLeast ? "at least " : "";
    super(`This model's maximum context length is ${limit} tokens. However, you requested ${least}${prompt + maxTokens} tokens ` +
      `(${least}${prompt} in the prompt, ${maxTokens} for the completion). Please reduce the length of the prompt or max_tokens.`,
      400, "invalid_request_error", "context_length_exceeded", param);
  }
}

export class QueueFullError extends AppError {
  constructor(retryAfterSeconds: number) {
    super("The server is busy: too many requests are waiting. Retry later.", 503, "service_unavailable", "queue_full", null,
      { "retry-after": String(retryAfterSeconds) });
  }
}

/** The client went away (or the server is shutting down); nothing is sent back. */
export class CancelledError extends AppError {
  constructor(reason = "request cancelled") {
    super(reason, 499, "invalid_request_error", "cancelled");
  }
}

export class NotReadyError extends AppError {
  constructor(message = "The server is starting or shutting down.") {
    super(message, 503, "service_unavailable", "not_ready", null, { "retry-after": "1" });
  }
}

/** A request a shutdown cancelled before anything was generated for it: send it again (the SDKs retry a 503). */
export class ShuttingDownError extends NotReadyError {
  constructor(message = "The server is shutting down: this request was cancelled before anything was generated. Send it again.") { super(message); }
}
