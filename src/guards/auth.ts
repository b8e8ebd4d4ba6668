/**
 * Deny by default: every route needs a valid key except GET /health (and the
 * docs with docsPublic). Public means the exact path the router will run; the
 * scopes a request needs are judged on both that raw path and its normalised
 * form (percent-decoding, duplicate and trailing slashes, case, dot segments),
 * so no spelling of a route slips past as public or into a wider scope.
 */
import { AppError } from "../errors";
import type { KeyRecord, Scope } from "./keys";

/** A 401 typed as OpenAI types its own (`invalid_request_error`, code `invalid_api_key`): clients that branch on `type` see what they know. */
export class AuthError extends AppError {
  constructor(message = "Missing or invalid API key. Send Authorization: Bearer <key>.", code = "invalid_api_key") {
    super(message, 401, "invalid_request_error", code, null, { "www-authenticate": "Bearer" });
  }
}

export class ScopeError extends AppError {
  constructor(scopes: readonly string[]) {
    super(`This API key lacks the ${scopes.map((s) => `'${s}'`).join(" or ")} scope.`, 403, "permission_error", "insufficient_scope");
  }
}

export function normalizePath(raw: string): string {
  let p = raw;
  for (let i = 0; i < 3; i++) {
    let next: string;
    try { next = decodeURIComponent(p); } catch { break; }
    if (next === p) break;
    p = next;
  }
  p = p.replace(/\\/g, "/").replace(/\/{2,}/g, "/").toLowerCase();
  // Resolve dot segments so /v1/../health is judged as what it would reach.
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "..") out.pop();
    else if (seg !== "." && seg !== "") out.push(seg);
  }
  return "/" + out.join("/");
}

const PUBLIC = new Set(["GET /health", "HEAD /health"]);
/** The docs page, its spec and the two UI assets it loads (exact paths), when docsPublic is on. */
const DOCS = new Set(["/swagger", "/swagger/json", "/swagger/assets/swagger-ui-bundle.js", "/swagger/assets/swagger-ui.css"]);

/**
 * Public only when the path as sent, byte for byte, is a public route: that is the route the router will
 * run. A spelling that normalises to /health ("/v1/models/..%2f..%2fhealth") is routed elsewhere, and
 * judging it by its normalised form let it reach that handler without a key.
 */
export function isPublic(method: string, path: string, docsPublic = false) {
  const m = method.toUpperCase();
  return PUBLIC.has(`${m} ${path}`) || (docsPublic && (m === "GET" || m === "HEAD") && DOCS.has(path));
}

/**
 * What a route needs, as alternatives: a key holding any one of them passes. Judged on the normalised path and on
 * the raw path the router matches on; a key needs to pass both.
 */
export function requiredScopes(path: string): Scope[][] {
  const seen = new Map<string, Scope[]>();
  for (const need of [scopeOf(normalizePath(path)), scopeOf(path)]) if (need) seen.set(need.join(), need);
  return [...seen.values()];
}

/** undefined = any valid key. */
function scopeOf(p: string): Scope[] | undefined {
  if (p === "/v1/chat/completions" || p === "/v1/responses") return ["chat"];
  if (p === "/v1/completions") return ["completions"];
  if (p === "/v1/embeddings") return ["embeddings"];
  if (p === "/v1/models" || p.startsWith("/v1/models/")) return ["models"];
  // llama-server's extensions, used to count and build prompts for generation: a key that may generate may use
  // them; a scraper's or an embeddings-only key may not.
  if (p === "/tokenize" || p === "/detokenize") return ["chat", "completions"];
  if (p === "/metrics") return ["metrics"]; // a scraper's key reaches nothing else
  if (p.startsWith("/admin")) return ["admin"];
  return undefined;
}

/** The presented key, from Authorization: Bearer or x-api-key. */
export function presentedKey(headers: Headers): string | undefined {
  const auth = headers.get("authorization");
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1] : undefined;
  }
  return headers.get("x-api-key")?.trim() || undefined;
}

export function checkScope(rec: KeyRecord, path: string) {
  if (rec.scopes.includes("admin")) return;
  for (const need of requiredScopes(path)) {
    if (!need.some((s) => rec.scopes.includes(s))) throw new ScopeError(need);
  }
}
