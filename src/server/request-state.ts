/**
 * Per-request facts that the guards, routes and the log/audit line share.
 * Keyed by the Request object, so any hook can reach it without Elysia's
 * scoping rules deciding what is visible where.
 */
export interface RequestState {
  id: string;
  start: number;
  route: string;
  clientIp: string;
  keyName?: string;
  status?: number;
  model?: string;
  promptTokens?: number;
  completionTokens?: number;
  /** Guard decisions, e.g. "prompt:flag:injection.ignore_previous". */
  decisions: string[];
  /** Extra response headers (rate limit, flags). */
  headers: Record<string, string>;
  /** Streaming responses write their own log/audit line when the stream ends. */
  deferredFinish?: boolean;
  finished?: boolean;
  errorCode?: string;
  /** Only with logPrompts on (off by default): logs must not hold user data. */
  promptText?: string;
  responseText?: string;
}

const states = new WeakMap<Request, RequestState>();

/** 128 random bits, URL-safe: unguessable, so it can be shown to clients. */
export function newRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "req_" + Buffer.from(bytes).toString("base64url");
}

export function initState(request: Request, clientIp: string, now: number): RequestState {
  const url = new URL(request.url);
  const state: RequestState = { id: newRequestId(), start: now, route: `${request.method} ${url.pathname}`, clientIp, decisions: [], headers: {} };
  states.set(request, state);
  return state;
}

export function stateOf(request: Request): RequestState {
  let s = states.get(request);
  if (!s) s = initState(request, "unknown", performance.now());
  return s;
}
