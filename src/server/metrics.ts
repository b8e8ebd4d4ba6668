/**
 * GET /metrics: what an operator scrapes (Prometheus text format, written by
 * prom-client). Every label takes its values from a small fixed set, or from
 * names the operator configured (rule ids), so a client cannot grow the series:
 * unknown routes are "other", methods outside the HTTP verbs "other", and a
 * guard label set beyond MAX_GUARD_SERIES is folded into "other".
 * The series are listed in the README (Metrics).
 */
import path from "node:path";
import client from "prom-client";
import type { Engine } from "../engine/engine";
import { engineInfo } from "../engine/engine-select";
import { lockedDown } from "../guards/lockdown";
import { newestVerifyStatus, VERIFY_STATUS_FILE, type VerifyStatus } from "../integrity/verify-status";
import type { VersionInfo } from "../version";
import { registerDefaultMetrics } from "./default-metrics";
import type { RequestState } from "./request-state";
import { lastLine } from "../util/last-line";
import type { OtlpExporter } from "./tracing/otlp-exporter";
import type { SharedStateStatus } from "../guards/store/shared-state";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models", "/tokenize", "/detokenize",
  "/health", "/ready", "/metrics", "/swagger", "/swagger/json"];
const GENERATION_ROUTES = new Set(["/v1/chat/completions", "/v1/completions", "/v1/responses"]);
/** Distinct {guard, rule, action} sets kept before new ones count as "other" (rule ids come from config). */
const MAX_GUARD_SERIES = 256;

/** Request latency: 1 ms (health, models) to 2 min (long generations on a CPU). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Queue wait and time to first token: a few ms with free slots, up to minutes behind a full queue. */
const WAIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const RATE_BUCKETS = [1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000];
/**
 * perf_hooks.monitorEventLoopDelay is a stub under Bun: min 2^63 ns, the rest 0 or NaN. nodejs_eventloop_lag_seconds
 * (measured with setImmediate) stays.
 */
const STUB_DEFAULTS = ["min", "max", "mean", "stddev", "p50", "p90", "p99"].map((s) => `nodejs_eventloop_lag_${s}_seconds`);

/** "METHOD /path" → bounded labels. */
export function routeLabels(route: string): { method: string; route: string } {
  const [m = "", raw = ""] = route.split(" ");
  const method = METHODS.has(m) ? m : "other";
  // Elysia serves a path with one trailing slash as the path without (POST /v1/chat/completions/ answers a chat).
  const p = raw.length > 1 && raw.endsWith("/") ? raw.slice(0, -1) : raw;
  if (p.startsWith("/v1/models/")) return { method, route: "/v1/models/{id}" };
  if (p.startsWith("/swagger/assets/")) return { method, route: "/swagger/assets" };
  return { method, route: ROUTES.includes(p) ? p : "other" };
}

/** "guard:action:rule" decision strings (guards/index.ts) → labels; undefined for bookkeeping entries. */
export function decisionLabels(d: string): { guard: string; action: string; rule: string } | undefined {
  const [guard = "", action = "", ...rest] = d.split(":");
  // log:skipped:N is about the log, upstream:<url> which upstream served (the audit record keeps it): no guard decided
  // either (an upstream's URL split at its colons made a series per upstream, scale-out run).
  if (guard === "log" || guard === "upstream") return undefined;
  if (guard === "auth") return { guard, action: "refuse", rule: action };
  if (guard === "signature") return { guard, action: action === "ok" ? "pass" : "refuse", rule: "ed25519" };
  return { guard, action, rule: rest.join(":") || "none" };
}

/** The shared-state operations (noteFallback's `what` in guards/store), as labels; anything else is "other". */
const FALLBACK_OPERATIONS = ["rate_limit", "concurrency_limit", "auth_failure_limit", "signature_nonces", "key_revocations"];
const operationLabel = (what: string) => { const l = what.replace(/[ -]/g, "_"); return FALLBACK_OPERATIONS.includes(l) ? l : "other"; };

const secondsBetween = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b >= a ? (b - a) / 1000 : undefined);

/** One registry per app: tests build many apps in one process, and each must count on its own. */
export class Metrics {
  readonly registry = new client.Registry();
  private readonly guardSeries = new Set<string>();
  private readonly c;
  private engine?: Engine;
  private slotsPerModel = 0;
  private alertLog?: string;
  private verifyFiles: string[] = [];
  /** The state dir's lockdown file (guards/lockdown.ts), looked for at each scrape. */
  private lockedDown?: () => boolean;
  /** The verify record as read at the start of the scrape in progress. */
  private verifyNow?: VerifyStatus;

  constructor(version?: VersionInfo) {
    const registers = [this.registry];
    const counter = (name: string, help: string, labelNames: string[] = []) => new client.Counter({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, buckets: number[], labelNames: string[] = []) =>
      new client.Histogram({ name, help, buckets, labelNames, registers });
    const gauge = (name: string, help: string, labelNames: string[] = []) => new client.Gauge({ name, help, labelNames, registers });
    this.c = {
      requests: counter("appliance_requests_total", "HTTP requests answered, by method, route and status.", ["method", "route", "status"]),
      duration: histogram("appliance_request_duration_seconds", "Time from the request's arrival to its last byte (streams: to [DONE]).", LATENCY_BUCKETS, ["route"]),
      ttft: histogram("appliance_time_to_first_token_seconds", "Time from the request's arrival to the first generated token.", WAIT_BUCKETS, ["route"]),
      queueWait: histogram("appliance_queue_wait_seconds", "Time a generating request waited for a free sequence (its first choice's).", WAIT_BUCKETS),
      tokens: counter("appliance_tokens_total", "Prompt and completion tokens processed (rate() of completion is tokens/s); cached: prompt tokens reused, not evaluated again.", ["kind"]),
      rate: histogram("appliance_generation_tokens_per_second", "Completion tokens per second of a generating request, first token to last (all its choices).", RATE_BUCKETS),
      guards: counter("appliance_guard_decisions_total", "Guard decisions by guard, rule and action.", ["guard", "rule", "action"]),
      authFailures: counter("appliance_auth_failures_total", "Requests refused by authentication: missing, invalid, scope, signature, throttled.", ["reason"]),
      rateLimited: counter("appliance_rate_limit_refusals_total", "429 answers: a key's limits, the anonymous limit, or the failed-auth throttle.", ["reason"]),
      queueFull: counter("appliance_queue_full_total", "Generations and embeddings refused with 503 because the wait line was full."),
      integrity: gauge("appliance_integrity_check_ok", "1 when the check passed at start (models: hashed against the manifest; native: library digests).", ["check"]),
      integrityAt: gauge("appliance_integrity_check_timestamp_seconds", "When that check last ran (unix seconds).", ["check"]),
    };
    gauge("appliance_build_info", "Build facts as labels; the value is 1.", ["version", "commit", "bun", "llama_cpp", "target"])
      .set({ version: version?.app ?? "unknown", commit: version?.commit ?? "unknown", bun: version?.bun ?? Bun.version,
        llama_cpp: version?.llamaCpp ?? "unknown", target: version?.target ?? "unknown" }, 1);
    // Read at scrape time, so they are never stale.
    const self = this;
    new client.Gauge({ name: "appliance_engine_info", help: "Which llama.cpp engine runs, as labels (kind built|embedded, node-llama-cpp folder and version); the value is 1.",
      labelNames: ["kind", "folder", "version"], registers,
      collect() { this.reset(); if (self.engine) this.set({ ...engineInfo(self.engine.backend) }, 1); } });
    new client.Gauge({ name: "appliance_queue_depth", help: "Requests waiting for a free sequence (generations and embeddings).", registers,
      collect() { this.set(self.engine?.load().queued ?? 0); } });
    new client.Gauge({ name: "appliance_slots", help: "Sequences (generation slots plus one embedding slot per model) by state.", labelNames: ["state"], registers,
      collect() {
        const total = (self.engine?.models().length ?? 0) * (self.slotsPerModel + 1);
        const busy = self.engine?.load().active ?? 0;
        this.set({ state: "busy" }, busy);
        this.set({ state: "idle" }, Math.max(0, total - busy));
      } });
    new client.Gauge({ name: "appliance_verify_alert_timestamp_seconds", help: "Time of the last failed `appliance verify` (the daily timer's alert log); 0 when none.",
      registers, collect() { this.set(self.lastAlert()); } });
    // The last full `appliance verify` (integrity/verify-status.ts): a file of ~100 bytes, read once per scrape by
    // render() for all three gauges.
    const verify = () => self.verifyNow;
    new client.Gauge({ name: "appliance_integrity_verify_last_run_timestamp_seconds", help: "When the last full `appliance verify` (the daily check) ran (unix seconds); 0 when none is recorded.",
      registers, collect() { this.set(Math.floor((verify()?.lastRunMs ?? 0) / 1000)); } });
    new client.Gauge({ name: "appliance_integrity_verify_last_success", help: "1 when the last full `appliance verify` passed, 0 when a check failed or none is recorded.",
      registers, collect() { this.set(verify()?.ok ? 1 : 0); } });
    new client.Gauge({ name: "appliance_integrity_verify_last_success_timestamp_seconds", help: "When a full `appliance verify` last passed (unix seconds); 0 when none has.",
      registers, collect() { this.set(Math.floor((verify()?.lastSuccessMs ?? 0) / 1000)); } });
    new client.Gauge({ name: "appliance_lockdown", help: "1 while the server is in lockdown (appliance lockdown: every route but /health and /metrics answers 503), else 0.",
      registers, collect() { this.set(self.lockedDown?.() ? 1 : 0); } });
    // process_resident_memory_bytes, open fds, event-loop lag, … The lag histogram's sampling timer (prom-client's
    // default: every 10 ms) is set to never fire: under Bun the histogram is a stub (its metrics are removed below), yet
    // its timer woke the JS thread 100 times a second, idle or between decode steps. nodejs_eventloop_lag_seconds stays.
    registerDefaultMetrics(this.registry, { eventLoopMonitoringPrecision: 2_147_483_647 });
    for (const name of STUB_DEFAULTS) this.registry.removeSingleMetric(name);
    for (const kind of ["prompt", "completion"]) this.c.tokens.inc({ kind }, 0);
    for (const reason of ["missing", "invalid", "scope", "signature", "throttled"]) this.c.authFailures.inc({ reason }, 0);
    for (const reason of ["key", "anonymous", "auth_throttle"]) this.c.rateLimited.inc({ reason }, 0);
  }

  /**
   * What the gauges read at scrape time: the engine's load, its slots per model, the verify alert log and the
   * last verify's record (in `<logDir>/verify` for the installed systemd service, else in the state dir).
   */
  attach(engine: Engine, parallel: number, logDir?: string, stateDir?: string) {
    this.engine = engine;
    this.slotsPerModel = parallel;
    this.alertLog = logDir ? path.join(logDir, "verify-alerts.log") : undefined;
    this.verifyFiles = [...(logDir ? [path.join(logDir, "verify", VERIFY_STATUS_FILE)] : []), ...(stateDir ? [path.join(stateDir, VERIFY_STATUS_FILE)] : [])];
    this.lockedDown = stateDir ? lockedDown(stateDir) : undefined;
  }

  /** Span export counts (only with tracing.otlpEndpoint set). */
  attachTracer(tracer: Pick<OtlpExporter, "stats">) {
    new client.Counter({ name: "appliance_trace_spans_total", help: "Spans by export outcome: exported, dropped (queue full), failed (POST failed).",
      labelNames: ["outcome"], registers: [this.registry],
      collect() {
        this.reset();
        for (const [outcome, n] of Object.entries(tracer.stats)) this.inc({ outcome }, n);
      } });
  }

  /**
   * The shared state (store redis only: with store memory there is nothing to show). Read at scrape time: whether Redis
   * answers now, and the operations answered without it, by operation (a fixed set: rate, concurrency and
   * auth-failure limits, signature nonces, key revocations).
   */
  attachSharedState(status: () => SharedStateStatus) {
    const registers = [this.registry];
    new client.Gauge({ name: "appliance_shared_state_redis_up", help: "rateLimit.store redis: 1 while Redis answers, 0 while it does not (policy local: limits, nonces and revocations are this instance's own; refuse: requests get 503 shared_state_unavailable).",
      labelNames: ["policy"], registers,
      collect() { this.reset(); const s = status(); this.set({ policy: s.policy ?? "local" }, s.redisUp ? 1 : 0); } });
    new client.Counter({ name: "appliance_shared_state_fallbacks_total", help: "rateLimit.store redis: shared-state operations answered without Redis (served from this instance's own state, or refused under policy refuse), by operation; a request makes one to four.",
      labelNames: ["operation"], registers,
      collect() {
        this.reset();
        for (const op of FALLBACK_OPERATIONS) this.inc({ operation: op }, 0);
        for (const [what, n] of Object.entries(status().fallbacks ?? {})) this.inc({ operation: operationLabel(what) }, n);
      } });
  }

  /** Audit records that could not be written (a full state disk): each request was answered, its record lost. */
  attachAudit(audit: { readonly writeFailures: number }) {
    new client.Counter({ name: "appliance_audit_write_failures_total", help: "Audit records that could not be written (e.g. a full disk): the request was answered, its record lost (the log stays verifiable).",
      registers: [this.registry],
      collect() { this.reset(); this.inc(audit.writeFailures); } });
  }

  /** An integrity check's outcome (serve's start checks). */
  integrityChecked(check: "models" | "native", ok: boolean, atMs = Date.now()) {
    this.c.integrity.set({ check }, ok ? 1 : 0);
    this.c.integrityAt.set({ check }, Math.floor(atMs / 1000));
  }

  /** Counts one finished request; `now` is performance.now() at its end. */
  record(s: RequestState, now = performance.now()) {
    const { method, route } = routeLabels(s.route);
    const status = s.status && s.status >= 100 && s.status <= 599 ? String(s.status) : "other";
    this.c.requests.inc({ method, route, status });
    this.c.duration.observe({ route }, Math.max(0, (now - s.start) / 1000));
    this.c.tokens.inc({ kind: "prompt" }, s.promptTokens ?? 0);
    this.c.tokens.inc({ kind: "completion" }, s.completionTokens ?? 0);
    this.c.tokens.inc({ kind: "cached" }, s.cachedTokens ?? 0);
    const m = s.marks;
    const ttft = secondsBetween(s.start, m["first-token"]);
    if (ttft !== undefined && GENERATION_ROUTES.has(route)) this.c.ttft.observe({ route }, ttft);
    const wait = secondsBetween(m.admitted, m.slot);
    if (wait !== undefined) this.c.queueWait.observe(wait);
    const genSeconds = secondsBetween(m["first-token"], m.done);
    if (genSeconds && s.completionTokens && s.completionTokens > 1) this.c.rate.observe((s.completionTokens - 1) / genSeconds);
    for (const d of s.decisions) {
      const l = decisionLabels(d);
      if (l) this.c.guards.inc(this.bounded(l));
    }
    this.refusals(s);
  }

  private refusals(s: RequestState) {
    const auth = s.decisions.find((d) => d.startsWith("auth:"));
    if (s.status === 401 || s.status === 403 || auth === "auth:throttled") {
      const reason = auth === "auth:throttled" ? "throttled" : auth === "auth:missing" ? "missing" : auth === "auth:invalid" ? "invalid"
        : s.errorCode === "insufficient_scope" ? "scope" : s.errorCode === "invalid_signature" ? "signature" : undefined;
      if (reason) this.c.authFailures.inc({ reason });
    }
    if (s.status === 429) this.c.rateLimited.inc({ reason: auth === "auth:throttled" ? "auth_throttle" : s.keyName ? "key" : "anonymous" });
    if (s.status === 503 && s.errorCode === "queue_full") this.c.queueFull.inc();
  }

  private bounded(l: { guard: string; rule: string; action: string }) {
    const k = `${l.guard}\u0000${l.rule}\u0000${l.action}`;
    if (this.guardSeries.has(k)) return l;
    if (this.guardSeries.size >= MAX_GUARD_SERIES) return { ...l, rule: "other" };
    this.guardSeries.add(k);
    return l;
  }

  /**
   * The time in the last alert record: of the log, or right after a rotation of the newest rotated file (.1 for
   * logrotate, .0 for newsyslog). Not the log's mtime: install creates the log empty and rotation recreates it,
   * each of which read as an alert that never happened.
   */
  private lastAlert(): number {
    if (!this.alertLog) return 0;
    for (const file of [this.alertLog, `${this.alertLog}.1`, `${this.alertLog}.0`]) {
      const ts = lastRecordTime(file);
      if (ts !== undefined) return ts;
    }
    return 0;
  }

  /** The exposition text. */
  render(): Promise<string> {
    this.verifyNow = newestVerifyStatus(this.verifyFiles);
    return this.registry.metrics();
  }

  get contentType() { return this.registry.contentType; }
}

/** The `ts` of a JSONL file's last record, in unix seconds; undefined for none. */
function lastRecordTime(file: string): number | undefined {
  try {
    const ms = Date.parse((JSON.parse(lastLine(file).line) as { ts?: string }).ts ?? "");
    return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
  } catch { return undefined; }
}
