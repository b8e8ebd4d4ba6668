/**
 * CORS, for the configured origins only: any other origin gets no CORS headers at all, so browsers are denied.
 *
 * Request headers: a preflight's Access-Control-Request-Headers is reflected when every name in it is a valid
 * header token (RFC 9110) and there are not too many, rather than answered from a fixed list. Why: the official
 * openai SDK sends its own headers on every call (x-stainless-os, -lang, -arch, -runtime, -runtime-version,
 * -package-version, -retry-count, -timeout, -helper-method in some versions, openai-organization/-project when
 * set), a set that changes between SDK versions; one name missing from a fixed list and the browser blocks every
 * call. Reflecting lets the origin the operator trusts send what it likes: no header changes what this server
 * does except the few it reads (auth, signature, content-type), which were always allowed. A list that is not
 * plain tokens gets the fixed list only.
 *
 * Response headers: the ones a client needs to back off and report (retry-after, x-ratelimit-*, x-request-id,
 * the prompt guard's flags) are exposed; without Access-Control-Expose-Headers browser code cannot read them.
 */
const OWN_HEADERS = "authorization, content-type, x-api-key, x-appliance-timestamp, x-appliance-signature";
const EXPOSED = [
  "retry-after", "x-request-id", "x-appliance-prompt-flags",
  "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
  "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
].join(", ");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const MAX_NAMES = 64;

/** The headers a preflight may be allowed: the request's own list when it is plain tokens, else ours. */
function allowedHeaders(requested: string | null): string {
  if (!requested) return OWN_HEADERS;
  const names = requested.toLowerCase().split(",").map((n) => n.trim()).filter(Boolean);
  if (names.length === 0 || names.length > MAX_NAMES || !names.every((n) => TOKEN.test(n))) return OWN_HEADERS;
  return names.join(", ");
}

export interface CorsAnswer {
  /** Headers for this response (and, for a preflight, all of them). */
  headers: Record<string, string>;
  /** An OPTIONS preflight: answer 204 with `headers` now, before auth. */
  preflight: boolean;
}

/** undefined: no Origin, or one not configured (no CORS headers at all). */
export function corsGuard(origins: readonly string[]) {
  const allowed = new Set(origins);
  return (method: string, headers: Headers): CorsAnswer | undefined => {
    const origin = headers.get("origin");
    if (!origin || !allowed.has(origin)) return undefined;
    if (method !== "OPTIONS") {
      return { preflight: false, headers: { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED, vary: "origin" } };
    }
    return { preflight: true, headers: {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": "GET, POST, OPTIONS",
      "access-control-allow-headers": allowedHeaders(headers.get("access-control-request-headers")),
      "access-control-max-age": "600",
      // the answer depends on the requested headers too: a cache must not hand it to another preflight
      vary: "origin, access-control-request-headers",
    } };
  };
}
