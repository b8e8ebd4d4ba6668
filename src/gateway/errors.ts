/**
 * What the gateway throws. Each is an AppError, so server/errors.ts (the one
 * mapper) turns it into OpenAI's {"error":{...}} with its status.
 */
import { AppError } from "../errors";
export { plainMessage } from "../util/plain-message";

/** No upstream for the model can take a request now (all down, unhealthy or with open breakers). */
export class UpstreamUnavailableError extends AppError {
  constructor(model: string, retryAfterSeconds: number, why: string) {
    super(`No upstream serving '${model}' is available (${why}). Retry later.`, 503, "service_unavailable", "upstream_unavailable", null,
      { "retry-after": String(Math.max(1, Math.ceil(retryAfterSeconds))) });
  }
}

/** The upstream answered, but not with something we can pass on (5xx, a redirect, a refused gateway key). */
export class UpstreamError extends AppError {
  constructor(message: string) {
    super(message, 502, "server_error", "upstream_error");
  }
}

/** Why one attempt failed; kept for the log and the final error's message (never the upstream's body). */
export class AttemptFailure extends Error {
  /**
   * `retryAfterS`: what a busy upstream's Retry-After asked for (429), passed on to the client. `detail`: for the
   * operator's log only (the upstream's own words, which may hold what the response scanner would redact).
   */
  constructor(message: string, readonly kind: "network" | "timeout" | "status" | "redirect" | "busy", readonly retryAfterS?: number, readonly detail?: string) {
    super(message);
    this.name = "AttemptFailure";
  }
}

/**
 * What a client may be told of a failed fetch: its code or name, never its message, which Bun writes with the URL
 * (`InvalidHTTPResponse fetching "http://10.0.0.5:8000/v1/chat/completions"`; gateway red-team run). The log keeps the
 * message (plainMessage).
 */
export const errorCode = (e: unknown): string => (e as NodeJS.ErrnoException)?.code ?? (e as Error)?.name ?? "error";


/** A Retry-After header in seconds (delta or HTTP date), bounded to an hour; undefined when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const s = /^\s*\d+\s*$/.test(header) ? Number(header) : (Date.parse(header) - now) / 1000;
  return Number.isFinite(s) && s > 0 ? Math.min(3600, Math.ceil(s)) : undefined;
}
