/**
 * What the guards need to know about a request body before the route sees it:
 * how long it may take to arrive, and how many tokens to reserve for it.
 */
import type { Config } from "../config/schema";
import { AppError } from "../errors";

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
 * generations, max_tokens (or the default). Two concurrent requests then cannot
 * both spend the key's remaining budget.
 */
export function tokenReservation(body: unknown, raw: string, path: string, config: Pick<Config, "defaultMaxTokens" | "maxTokensCap">): number {
  const prompt = Math.ceil(raw.length / 4);
  if (path.endsWith("/embeddings") || !body || typeof body !== "object") return prompt;
  const b = body as Record<string, unknown>;
  const asked = [b.max_completion_tokens, b.max_tokens].find((v): v is number => typeof v === "number" && Number.isFinite(v) && v > 0);
  return prompt + Math.min(Math.ceil(asked ?? config.defaultMaxTokens), config.maxTokensCap);
}
