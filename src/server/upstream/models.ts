/** Upstream models as OpenAI model objects, listed beside the local ones by GET /v1/models. */
import type { AppDeps } from "../deps";

export const upstreamModel = (deps: AppDeps, id: string) =>
  ({ id, object: "model" as const, created: deps.gateway!.created, owned_by: "upstream" });

/** The upstream models a local model of the same id does not shadow (serve refuses such a config; this keeps the list unique regardless). */
export function upstreamModels(deps: AppDeps) {
  if (!deps.gateway) return [];
  return deps.gateway.models().filter((id) => !deps.engine.model(id)).map((id) => upstreamModel(deps, id));
}
