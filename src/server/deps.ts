/**
 * What the app is built from (AppInput) and what its routes see (AppDeps), in
 * their own module so routes and app.ts do not import each other.
 */
import type { Config } from "../config/schema";
import type { ChatTurn, Engine } from "../engine/engine";
import type { Gateway } from "../gateway/gateway";
import type { Guards } from "../guards";
import type { TextFilter } from "../guards/response-scan";
import type { Logger } from "../log/logger";
import type { VersionInfo } from "../version";
import type { Inflight } from "./inflight";
import type { Metrics } from "./metrics";
import type { OtlpExporter } from "./tracing/otlp-exporter";
import type { RequestState } from "./request-state";

export interface AppInput {
  config: Readonly<Config>;
  engine: Engine;
  log: Logger;
  guards: Guards;
  version: VersionInfo;
  /** Gateway mode: the models served by upstreams (absent when none are configured). */
  gateway?: Gateway;
  /** Wall clock in ms (injected so tests never sleep). */
  clock?: () => number;
}

/** What routes see: the input plus the shared request-path helpers. */
export interface AppDeps extends AppInput {
  clock: () => number;
  inflight: Inflight;
  metrics: Metrics;
  /** Span export to the configured OTLP collector; absent when none is configured. */
  tracer?: OtlpExporter;
  /** Set on SIGTERM/SIGINT: /ready turns 503 so load balancers stop sending. */
  draining: boolean;
  /** `messages`: how many of `turns` are the request's messages, for `maxMessages` (default all of them). */
  /** `param`: the request field the prompt came in, named by a bound's 400 (default `messages`). */
  promptGuard: (state: RequestState, model: string, turns: ChatTurn[], messages?: number, param?: string) => ChatTurn[];
  /** `answer`: the filter of an answer's text; `json`: of JSON text (guards/index.ts responseFilter). */
  responseFilter: (state: RequestState, answer?: boolean, json?: boolean) => TextFilter;
  /** Token counts are final: charge them to the key's limits now. */
  settle: (state: RequestState) => void;
  finish: (state: RequestState) => void;
}
