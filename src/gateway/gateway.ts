/**
 * Gateway mode: the models this server fronts on upstream OpenAI-compatible
 * servers, and the one call the routes make to reach them. Built once by the
 * composition root (cli/commands/serve.ts) from `upstreams` and `gateway`.
 *
 * Layering: server → gateway → config, log. The guards never see the gateway;
 * the routes run every guard before calling forward() and scan what comes back.
 */
import { ConfigError } from "../config/load";
import type { Config } from "../config/schema";
import type { Logger } from "../log/logger";
import { LeastInflight } from "./balancer";
import { detokenizeUpstream } from "./detokenize";
import { Forwarder, type ForwardRequest, type UpstreamReply } from "./forwarder";
import { HealthChecker, realEvery, type Every } from "./health";
import { UpstreamPool } from "./pool";
import { COMMON_SPECIAL_TOKENS } from "./special-tokens";

export type { ForwardRequest, UpstreamReply } from "./forwarder";

export interface GatewayOptions {
  /** ms wall clock for the breakers (injected by tests). */
  clock?: () => number;
  /** Health-check timer (injected by tests). */
  every?: Every;
  env?: Record<string, string | undefined>;
}

export class Gateway {
  readonly pool: UpstreamPool;
  readonly health: HealthChecker;
  private readonly forwarder: Forwarder;
  private readonly balancer = new LeastInflight();
  private readonly tunables: Config["gateway"];
  private readonly specials = [...COMMON_SPECIAL_TOKENS];
  /** When this gateway started, as OpenAI's `created` of its upstream models. */
  readonly created: number;

  constructor(config: Pick<Config, "upstreams" | "gateway">, log: Logger, opts: GatewayOptions = {}) {
    const clock = opts.clock ?? Date.now;
    this.pool = new UpstreamPool(config, clock, opts.env);
    this.tunables = config.gateway;
    this.forwarder = new Forwarder(this.pool, this.balancer, config.gateway, log, clock);
    this.health = new HealthChecker(this.pool.all, { intervalMs: config.gateway.healthIntervalMs, timeoutMs: config.gateway.healthTimeoutMs },
      log, opts.every ?? realEvery);
    this.created = Math.floor(clock() / 1000);
  }

  serves(model: string): boolean {
    return this.pool.serves(model);
  }

  models(): string[] {
    return this.pool.models();
  }

  /** Some upstream can take a request now (readiness of a server that serves upstream models). */
  ready(): boolean {
    return this.pool.all.some((u) => u.usable());
  }

  /** What the prompt guard treats as control tokens in prompts for upstream models. */
  specialTokens(): string[] {
    return this.specials; // the same array every time: the prompt guard caches its regex per array
  }

  forward(req: ForwardRequest): Promise<UpstreamReply> {
    return this.forwarder.forward(req);
  }

  /** Token-id prompts as text, through an upstream serving `model` (detokenize.ts). */
  detokenize(model: string, prompts: number[][], signal: AbortSignal): Promise<string[]> {
    return detokenizeUpstream(this.pool, this.balancer, model, prompts, this.tunables.firstByteTimeoutMs, signal);
  }

  start(): void {
    this.health.start();
  }

  stop(): void {
    this.health.stop();
  }
}

/** The gateway for a config, or undefined when it names no upstreams. */
export function createGateway(config: Pick<Config, "upstreams" | "gateway">, log: Logger, opts?: GatewayOptions): Gateway | undefined {
  return config.upstreams.length ? new Gateway(config, log, opts) : undefined;
}

/**
 * What the prompt guard reads as control tokens: the local model's own, or the
 * common templates' for a model served by an upstream (whose vocabulary we cannot read).
 */
export function controlTokens(gateway: Gateway | undefined, local: { specialTokens(model: string): string[] }) {
  return { specialTokens: (model: string) => (gateway?.serves(model) ? gateway.specialTokens() : local.specialTokens(model)) };
}

/** A model id served both locally and by an upstream is a config error (serve, and `config validate`). */
export function refuseClash(local: readonly string[], servesUpstream: (id: string) => boolean) {
  const both = local.find(servesUpstream);
  if (both) throw new ConfigError(`invalid config: upstreams: model ${both} is both a local model and an upstream one`, "upstreams");
}
