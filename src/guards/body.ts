/**
 * What the guards need to know about a request body before the route sees it:
 * how long it may take to arrive, and how many tokens to reserve for it.
 */
import type { Config } from "../config/schema";
import { AppError } from "../errors";
import { normalizePath } from "./auth";
import { MAX_CHOICES } from "./bounds";

/**
 * A body that did not arrive within limits.bodyTimeoutMs. The idle timeout alone never fires on a body
 * that trickles a byte at a time, and generation requests lift it once parsed.
 */
export class BodyTimeoutError extends AppError {
  constructor(ms: number) {
    super(`The request body did not arrive within ${Math.round(ms / 1000)} s.`, 408, "invalid_request_error", "body_timeout", null,
      { connection: "close" });
  }
}

/** The body length a request declares (Content-Length; 0 when absent). */
export const declaredLength = (request: Request) => Number(request.headers.get("content-length") ?? 0);

/**
 * A request that came with a body no handler read (an unknown route, a GET, one refused before its body). Told by its
 * framing: a GET's body is null in Bun.
 */
export const bodyUnread = (request: Request) => !request.bodyUsed && (request.headers.has("transfer-encoding") || declaredLength(request) > 0);

/**
 * A body over maxBodyBytes, declared or counted as it arrived. The connection is closed: the rest of the body is
 * never read, so it cannot be taken for the next request, and a client still sending learns at once.
 */
export class BodyTooLargeError extends AppError {
  constructor(max: number) {
    super(`Request body is larger than ${max} bytes.`, 413, "invalid_request_error", "body_too_large", null, { connection: "close" });
  }
}

/**
 * A compressed body (Content-Encoding gzip, br, …): never decompressed here (a small gzip body inflates past any
 * limit), so 415 as HTTP has it for a content coding the server does not take, before a byte of it is read; it was a
 * 400 invalid_json that did not say why.
 */
export class UnsupportedEncodingError extends AppError {
  constructor(coding: string) {
    super(`Content-Encoding '${coding.slice(0, 64)}' is not supported: send the request body uncompressed.`, 415, "invalid_request_error",
      "unsupported_content_encoding", null, { connection: "close" });
  }
}

/** Throws UnsupportedEncodingError for a Content-Encoding other than identity. */
export function checkEncoding(request: Request): void {
  const coding = request.headers.get("content-encoding")?.trim().toLowerCase();
  if (coding && coding !== "identity") throw new UnsupportedEncodingError(coding);
}

/**
 * The body's bytes, read as they arrive (Content-Length or chunked alike) and counted: BodyTooLargeError as soon as
 * more than `max` have come, never buffering more than that. Bun's own limit is set far above ours (listen.ts), so
 * this, not Bun's bodiless 413, answers every oversize body.
 */
export async function readBodyBytes(request: Request, max: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      reader.cancel().catch(() => {});
      throw new BodyTooLargeError(max);
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n);
}

/** Resolves like `p`, or rejects with `error()` after `ms`; `p` is left to settle on its own. */
export function withDeadline<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(error()), ms); });
  p.catch(() => {}); // a body that fails after the deadline has nobody left to tell
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * Tokens to reserve for a request before it runs: its prompt (estimated at one
 * token per 4 bytes of body; the real count is settled afterwards) and, for
 * generations, max_tokens (max_completion_tokens, the Responses API's
 * max_output_tokens, or the default) for each choice it asks for: n, times a
 * completions request's prompts. Two concurrent requests then cannot both spend
 * the key's remaining budget (counting one choice let an n=16 request spend 16×
 * what it reserved). The body is not validated yet: odd values count as absent,
 * and choices past MAX_CHOICES (refused by the schema) as MAX_CHOICES.
 */
export function tokenReservation(body: unknown, raw: string, path: string, config: Pick<Config, "defaultMaxTokens" | "maxTokensCap">): number {
  const prompt = Math.ceil(raw.length / 4);
  path = normalizePath(path); // as the scope check judges it: the router takes "/v1/completions/" for "/v1/completions"
  if (path.endsWith("/embeddings") || !body || typeof body !== "object") return prompt;
  const b = body as Record<string, unknown>;
  const asked = [b.max_completion_tokens, b.max_tokens, b.max_output_tokens].find((v): v is number => typeof v === "number" && Number.isFinite(v) && v > 0);
  const n = typeof b.n === "number" && Number.isInteger(b.n) && b.n > 1 ? b.n : 1;
  const p = b.prompt;
  const prompts = path.endsWith("/completions") && !path.endsWith("/chat/completions") && Array.isArray(p) && p.length > 1 && typeof p[0] !== "number" ? p.length : 1;
  return prompt + Math.min(n * prompts, MAX_CHOICES) * Math.min(Math.ceil(asked ?? config.defaultMaxTokens), config.maxTokensCap);
}
