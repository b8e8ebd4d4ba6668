/** GET /health (liveness, public) and GET /ready (a model is loaded and we are not draining). */
import { Elysia } from "elysia";
import { lockedDown } from "../../guards/lockdown";
import { engineInfo } from "../../engine/engine-select";
import { NotReadyError } from "../../errors";
import type { AppDeps } from "../deps";
import { stateOf } from "../request-state";

export const healthRoutes = (deps: AppDeps, locked = lockedDown(deps.config.stateDir)) =>
  new Elysia({ name: "routes.health" })
    // Which engine runs (kind, folder, version; no path) follows /ready's rule for model ids: /health is public, so
    // only with auth off; with auth on, /ready says it to keys that may list models, /metrics to the metrics scope.
    // In lockdown it still answers 200 (supervisors must not restart it), and says so: every other route tells any
    // caller as much (503 lockdown), and a probe or dashboard reading only /health saw "ok" (operations run).
    .get("/health", () => ({ status: "ok", ...(locked() && { lockdown: true }),
      ...(!deps.config.auth && { engine: engineInfo(deps.engine.backend), ...sharedStateOf(deps) }) }), { detail: { summary: "Liveness (no key needed)", tags: ["Operations"], security: [] } })
    .get("/ready", ({ request }) => {
      if (deps.draining) throw new NotReadyError("The server is shutting down.");
      // A gateway says its upstreams are the reason (it said "no model is loaded yet" while they were all down).
      if (!(deps.engine.ready() || deps.gateway?.ready())) {
        throw new NotReadyError(deps.gateway ? "No local model is loaded and no upstream is usable (all failing health checks or breakers open)." : "No model is loaded yet.");
      }
      // Model ids only for keys that may list models (or with auth off).
      const scopes = stateOf(request).scopes;
      const listModels = !deps.config.auth || !!scopes?.some((s) => s === "models" || s === "admin");
      return { status: "ready", ...(listModels ? { models: [...deps.engine.models().map((m) => m.id), ...(deps.gateway?.models() ?? [])], engine: engineInfo(deps.engine.backend) } : {}),
        backend: deps.engine.backend, ...deps.engine.load(), ...(listModels && sharedStateOf(deps)) };
    }, { detail: { summary: "Readiness: a model is loaded", tags: ["Operations"] } });

/**
 * With rateLimit.store redis: whether Redis answers (while it does not, policy "local" enforces limits per instance,
 * "refuse" answers 503), under the same rule as the engine's facts. Not the last error: it can name hosts.
 */
function sharedStateOf(deps: AppDeps) {
  const s = deps.guards.sharedState();
  if (s.store !== "redis") return {};
  return { sharedState: { store: s.store, policy: s.policy, redisUp: !!s.redisUp, ...(s.since ? { since: new Date(s.since).toISOString() } : {}) } };
}

/** GET /metrics (the `metrics` scope, or admin): Prometheus text format. */
export const metricsRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.metrics" }).get("/metrics", async ({ request }) => new Response(await deps.metrics.render(), {
    headers: { "content-type": deps.metrics.contentType, "x-request-id": stateOf(request).id, ...stateOf(request).headers },
  }), { detail: { summary: "Prometheus metrics (needs the `metrics` scope; see README, Metrics)", tags: ["Operations"] } });
