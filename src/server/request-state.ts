/**
 * Per-request facts that the guards, routes and the log/audit line share.
 * Keyed by the Request object, so any hook can reach it without Elysia's
 * scoping rules deciding what is visible where.
 */
import type { RequestSummary } from "../log/audit";
import { formatTraceparent, traceFor, type TraceContext } from "./tracing/trace-context";

export interface RequestState {
  id: string;
  start: number;
  /** "METHOD /path", the path cut to MAX_LOGGED_PATH so one request cannot write kilobytes of log. */
  route: string;
  /** Raw request path and query, split from request.url by hand (see splitUrl). */
  path: string;
  query: string;
  /** The Host header, or the URL's authority when there is none (app.handle() in tests); "" when neither. */
  host: string;
  clientIp: string;
  keyName?: string;
  /** The key's id (a new key may take a revoked key's name, never its id). */
  keyId?: string;
  /** The key's scopes, once a key is verified. */
  scopes?: readonly string[];
  status?: number;
  model?: string;
  promptTokens?: number;
  /** Of promptTokens, those reused from an earlier prompt (not evaluated again). */
  cachedTokens?: number;
  completionTokens?: number;
  /** Guard decisions, e.g. "prompt:flag:injection.ignore_previous". */
  decisions: string[];
  /** Extra response headers (rate limit, flags). */
  headers: Record<string, string>;
  /** Streaming responses write their own log/audit line when the stream ends. */
  deferredFinish?: boolean;
  finished?: boolean;
  /** Gives the connection its idle timeout back when the request ends (a POST lifts it while it runs: app.ts). */
  idleAgain?: () => void;
  errorCode?: string;
  /** Only with logPrompts on (off by default): logs must not hold user data. */
  promptText?: string;
  responseText?: string;
  /** W3C trace context: from the caller's traceparent, or a new trace. */
  trace: TraceContext;
  /** performance.now() when each stage was first reached, for the latency metrics and the spans. */
  marks: StageMarks;
}

/** Stage times of one request (performance.now() ms); absent where the request never got there. */
export interface StageMarks {
  /** The guards before the route (host, auth, signature, rate limit) are done. */
  guarded?: number;
  /** The prompt guard ran from … to …. */
  promptGuard?: [number, number];
  /** Engine stages (GenerationStage): a place in the queue, a slot, the first generated token. */
  admitted?: number;
  slot?: number;
  "first-token"?: number;
  /** Generation over (token counts known). */
  done?: number;
}

const states = new WeakMap<Request, RequestState>();

/** 128 random bits, URL-safe: unguessable, so it can be shown to clients. */
export function newRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "req_" + Buffer.from(bytes).toString("base64url");
}

/** Longest path written to the log and audit line; the rest becomes "…". */
export const MAX_LOGGED_PATH = 256;

/**
 * Path and query of request.url without `new URL()`: Bun hands over URLs that the
 * URL parser rejects (Host: localhost:evil gives "http://localhost:evil/x", an
 * empty Host gives "/x"), and a throw here would escape every hook.
 */
export function splitUrl(url: string): { authority: string; path: string; query: string } {
  let start = 0, authority = "";
  if (!url.startsWith("/")) {
    const scheme = url.indexOf("://");
    start = scheme < 0 ? url.length : url.indexOf("/", scheme + 3);
    if (start < 0) start = url.length;
    if (scheme >= 0) authority = url.slice(scheme + 3, start);
  }
  const q = url.indexOf("?", start);
  return { authority, path: url.slice(start, q < 0 ? undefined : q) || "/", query: q < 0 ? "" : url.slice(q) };
}

export function initState(request: Request, clientIp: string, now: number): RequestState {
  const { authority, path, query } = splitUrl(request.url);
  const host = request.headers.get("host") ?? authority;
  const logged = path.length > MAX_LOGGED_PATH ? path.slice(0, MAX_LOGGED_PATH) + "…" : path;
  const state: RequestState = {
    id: newRequestId(), start: now, route: `${request.method.slice(0, 16)} ${logged}`, path, query, host, clientIp, decisions: [], headers: {},
    trace: traceFor(request.headers.get("traceparent")), marks: {},
  };
  // Every response of this request (JSON, error, stream, CORS preflight) carries our span as the caller's parent.
  state.headers.traceparent = formatTraceparent(state.trace);
  states.set(request, state);
  return state;
}

export function stateOf(request: Request): RequestState {
  let s = states.get(request);
  if (!s) s = initState(request, "unknown", performance.now());
  return s;
}

/**
 * The one summary of a finished request, taken once at `end` (performance.now()): the log line and the audit
 * record are built from it, so they never disagree on a field or a duration.
 */
export function summarize(s: RequestState, end: number): RequestSummary {
  return {
    reqId: s.id, traceId: s.trace.traceId, key: s.keyName ?? null, route: s.route, status: s.status ?? 0, model: s.model,
    promptTokens: s.promptTokens, completionTokens: s.completionTokens, decisions: s.decisions,
    ms: Math.round((end - s.start) * 10) / 10, client: s.clientIp,
  };
}

/**
 * Whose evaluated prompts a generation may reuse (engine cacheScope): the verified key's, or, where no key was
 * asked for (auth off), every such request's.
 */
export const cacheScopeOf = (s: RequestState): string => (s.keyId !== undefined ? `key:${s.keyId}` : "anonymous");
