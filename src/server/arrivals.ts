/**
 * Tells the engine about generation requests from the moment they are received until they reach its queue, so a
 * burst's prompts are evaluated in one step (engine/arrivals.ts). Keyed by the Request, like the request state.
 */
import type { Engine } from "../engine/engine";

const GENERATION = new Set(["/v1/completions", "/v1/chat/completions", "/v1/responses"]);
const open = new WeakMap<Request, () => void>();

/** At request start: a POST to a generation route is announced to the engine. `path` is the request's path. */
export function expectArrival(request: Request, path: string, engine: Engine): void {
  if (request.method !== "POST" || !GENERATION.has(path) || !engine.expectArrival) return;
  open.set(request, engine.expectArrival());
}

/**
 * The request was admitted by the engine, was refused, ended, or named an upstream model (the route prologue: it is
 * announced before its body says which model): it is no longer on its way (idempotent).
 */
export function arrived(request: Request): void {
  open.get(request)?.();
  open.delete(request);
}
