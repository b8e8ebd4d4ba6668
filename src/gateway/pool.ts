/**
 * The configured upstreams, indexed by the model ids they serve.
 */
import { ConfigError } from "../config/load";
import type { Config } from "../config/schema";
import { CircuitBreaker } from "./breaker";
import { Upstream, upstreamKey, upstreamTls } from "./upstream";

export class UpstreamPool {
  readonly all: Upstream[];
  private readonly byModel = new Map<string, Upstream[]>();

  constructor(config: Pick<Config, "upstreams" | "gateway">, clock: () => number, env: Record<string, string | undefined> = process.env) {
    const g = config.gateway;
    this.all = config.upstreams.map((u) =>
      new Upstream(u.models, u.url, upstreamKey(u, env), new CircuitBreaker(g.breakerFailures, g.breakerCooldownMs, clock), upstreamTls(u)));
    for (const u of this.all) {
      for (const m of u.models) {
        const list = this.byModel.get(m) ?? [];
        if (list.some((x) => x.base === u.base)) throw new ConfigError(`invalid config: upstreams: ${u.name} is listed twice for model ${m}`, "upstreams");
        list.push(u);
        this.byModel.set(m, list);
      }
    }
  }

  /** Model ids served through upstreams, in config order. */
  models(): string[] {
    return [...this.byModel.keys()];
  }

  serves(model: string): boolean {
    return this.byModel.has(model);
  }

  candidates(model: string): readonly Upstream[] {
    return this.byModel.get(model) ?? [];
  }

  /**
   * Why nothing can take a request for `model`, and how long until something might:
   * the shortest breaker cool-down left, or the health-check period when all are unhealthy.
   */
  unavailable(model: string, healthIntervalMs: number): { why: string; retryAfterS: number } {
    const list = this.candidates(model);
    const open = list.filter((u) => !u.breaker.available());
    if (open.length === list.length) {
      return { why: "circuit breaker open", retryAfterS: Math.min(...open.map((u) => u.breaker.waitMs())) / 1000 || 1 };
    }
    return { why: "failing health checks", retryAfterS: Math.max(1, (healthIntervalMs || 1000) / 1000) };
  }
}
