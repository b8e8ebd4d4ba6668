/** Counters for GET /metrics (Prometheus text format). */
import type { Engine } from "../engine/engine";
import type { RequestState } from "./request-state";

export class Metrics {
  private requests = new Map<string, number>();
  private promptTokens = 0;
  private completionTokens = 0;

  record(s: RequestState) {
    const method = s.route.split(" ")[0]!;
    const k = `${METHODS.has(method) ? method : "other"} ${routeLabel(s.route)} ${s.status ?? 0}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
    this.promptTokens += s.promptTokens ?? 0;
    this.completionTokens += s.completionTokens ?? 0;
  }

  render(engine: Engine): string {
    const lines = ["# TYPE appliance_requests_total counter"];
    for (const [k, n] of this.requests) {
      const [method, route, status] = k.split(" ");
      lines.push(`appliance_requests_total{method="${method}",route="${route}",status="${status}"} ${n}`);
    }
    const load = engine.load();
    lines.push("# TYPE appliance_tokens_total counter",
      `appliance_tokens_total{kind="prompt"} ${this.promptTokens}`, `appliance_tokens_total{kind="completion"} ${this.completionTokens}`,
      "# TYPE appliance_generations_active gauge", `appliance_generations_active ${load.active}`,
      "# TYPE appliance_generations_queued gauge", `appliance_generations_queued ${load.queued}`);
    return lines.join("\n") + "\n";
  }
}

/** Label values stay a small fixed set whatever clients send, so the counters' memory stays bounded. */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Known routes by name, everything else as "other", so label cardinality stays bounded. */
function routeLabel(route: string): string {
  const p = route.split(" ")[1] ?? "";
  if (p.startsWith("/v1/models/")) return "/v1/models/{id}";
  return ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health", "/ready", "/metrics"].includes(p) ? p : "other";
}
