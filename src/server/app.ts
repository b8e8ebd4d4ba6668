/**
 * createApp(deps) builds the HTTP application and never listens: tests call
 * app.handle(new Request(...)), server/listen.ts binds it. Read top to bottom,
 * this is the request path: state → guards (fixed order, guards/index.ts) →
 * routes (a table of the API) → error mapper → log + audit line.
 */
import { Elysia } from "elysia";
import { bindOnceAdapter } from "./bind-adapter";
import { InvalidRequestError, ShuttingDownError } from "../errors";
import { checkJsonShape, unserialisable } from "../guards/json-shape";
import { bodyUnread } from "../guards/body";
import { clientAddressFor } from "../guards/client-address";
import { unredacted } from "../log/logger";
import type { AppDeps, AppInput } from "./deps";
import { lastResortResponse, toAppError, toResponse } from "./errors";
import { Inflight } from "./inflight";
import { LOCKDOWN_WATCH_MS, LockdownError, lockedDown } from "../guards/lockdown";
import { arrived, expectArrival } from "./arrivals";
import { admissionTurn } from "./admission-turn";
import { initState, newRequestId, stateOf, summarize } from "./request-state";
import { chatRoutes } from "./routes/chat";
import { completionRoutes } from "./routes/completions";
import { docsRoutes } from "./routes/docs";
import { embeddingRoutes } from "./routes/embeddings";
import { healthRoutes, metricsRoutes } from "./routes/health";
import { Metrics } from "./metrics";
import { OtlpExporter } from "./tracing/otlp-exporter";
import { requestSpans } from "./tracing/spans";
import { modelRoutes } from "./routes/models";
import { responsesRoutes } from "./routes/responses";
import { tokenizeRoutes } from "./routes/tokenize";

/**
 * Answered as usual while the server drains (readiness's own 503, a last scrape); every other route 503s, /health too:
 * a draining process's "ok" could pass `update`'s health check for the instance replacing it (launchd's kickstart
 * need not wait for the old one to exit: second fix-attack run).
 */
const ALWAYS_ANSWERED: ReadonlySet<string> = new Set(["/ready", "/metrics"]);

export type { AppDeps, AppInput } from "./deps";

export function createApp(input: AppInput) {
  const { log, guards, config } = input;
  const metrics = new Metrics(input.version);
  // The daily verify (systemd timer) appends its failures to the alert log in the service's logs directory and
  // records its outcome there (installed) or in the state dir.
  metrics.attach(input.engine, config.parallel, process.env.LOGS_DIRECTORY?.split(":")[0], config.stateDir);
  // Spans leave the machine only for the collector the operator named; otherwise no exporter exists at all.
  const tracer = config.tracing.otlpEndpoint
    ? new OtlpExporter({ endpoint: config.tracing.otlpEndpoint, maxQueue: config.tracing.maxQueuedSpans, serviceVersion: input.version.app, log })
    : undefined;
  if (tracer) metrics.attachTracer(tracer);
  // A lockdown cuts what is already generating too (its answers end as a shutdown's do, cut short), not only the
  // next requests: a stream ran on to its max_tokens after `appliance lockdown` (claims audit).
  const inflight = new Inflight();
  const locked = lockedDown(config.stateDir);
  inflight.watch(() => (locked() ? { reason: "lockdown", error: () => new LockdownError() } : undefined), LOCKDOWN_WATCH_MS);
  if (guards.sharedState().store === "redis") metrics.attachSharedState(() => guards.sharedState());
  // The per-request summary line names no field the logger redacts (its type says so): written without redaction.
  const requestLog = unredacted(log);
  const deps: AppDeps = {
    ...input,
    clock: input.clock ?? Date.now,
    inflight,
    metrics,
    tracer,
    draining: false,
    promptGuard: (state, model, turns, messages, param) => {
      const t0 = performance.now();
      try { return guards.prompt(state, model, turns, messages, param); } finally { state.marks.promptGuard ??= [t0, performance.now()]; }
    },
    responseFilter: (state, answer, json) => guards.responseFilter(state, answer, json),
    settle: (state) => guards.settle(state),
    finish: (state) => {
      if (state.finished) return;
      state.finished = true;
      const written = guards.onFinish(state);
      const end = performance.now();
      deps.metrics.record(state, end); // counted always, even when left out of log and audit
      if (tracer && state.trace.sampled) tracer.add(requestSpans(state, end));
      if (!written) return;
      // One summary for both records; the log line adds what the audit must not hold (text, when logPrompts).
      const summary = summarize(state, end);
      guards.record(summary);
      const { key, ...rest } = summary; // "key" is a name the logger redacts (requestLog refuses it), so the line says keyName
      requestLog.info({
        ...rest, keyName: key ?? undefined, ...(state.errorCode ? { code: state.errorCode } : {}),
        ...(state.promptText !== undefined ? { prompt: state.promptText, response: state.responseText } : {}),
      }, "request");
    },
  };

  // Whoever calls listen(): never Bun's development error page (HTML with the cwd, stack and source), and
  // anything that escapes every hook still leaves as our JSON 500 naming only a fresh request id.
  const serve = {
    development: false,
    error: (err: Error) => {
      const id = newRequestId();
      log.error({ reqId: id, err: { name: err?.name, message: String(err?.message).slice(0, 200) } }, "unhandled error outside the request path");
      return lastResortResponse(id);
    },
  };
  const clientAddress = clientAddressFor(config.trustedProxies);
  const app = new Elysia({ name: "appliance", serve, adapter: bindOnceAdapter })
    // 1. Request state and the guards that need no body: host → CORS → body size → auth.
    .onRequest(async ({ request, server, set }) => {
      const state = initState(request, clientAddress(server?.requestIP(request)?.address ?? "local", request.headers.get("x-forwarded-for")), performance.now());
      set.headers["x-request-id"] = state.id;
      if (deps.draining) {
        // A request that arrives while the server drains (on a kept-alive connection, or a new one: the port stays
        // open so that these are answered) gets the 503 the SDKs retry, and its connection is closed. Under Bun's
        // stop(false) such requests were never dispatched: no answer, no audit record, the socket closed at the end.
        state.headers.connection = "close";
        if (!ALWAYS_ANSWERED.has(state.path)) throw new ShuttingDownError("The server is shutting down and takes no new requests. Send it again.");
      }
      expectArrival(request, state.path, input.engine); // on its way to the engine: a burst's prompts go in one step
      const early = await guards.onRequest(request, state);
      Object.assign(set.headers, state.headers);
      if (early) return early;
    })
    // 2. JSON bodies read once, size-checked, kept raw for the signature guard.
    .onParse({ as: "global" }, async ({ request, contentType }) => {
      const state = stateOf(request);
      const raw = await guards.readBody(request, state);
      if (raw === "") return undefined;
      // a media type is case-insensitive ("Application/JSON"), its parameters (charset) are not ours to check
      if (contentType?.split(";")[0]!.trim().toLowerCase() !== "application/json") {
        throw new InvalidRequestError("Content-Type must be application/json.", null, "invalid_content_type");
      }
      // depth and width first: everything after JSON.parse walks the value recursively
      checkJsonShape(raw, config.limits.jsonMaxDepth, config.limits.jsonMaxWidth);
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        throw new InvalidRequestError("We could not parse the JSON body of your request. Send valid JSON.", null, "invalid_json");
      }
      // zod's records skip a "__proto__" key (JSON.parse makes it an own key): logit_bias {"__proto__": "zzz"} passed
      // unvalidated and did nothing (red-team run). Its keys are token ids; no other record's keys are read.
      const bias = (body as { logit_bias?: unknown } | null)?.logit_bias;
      if (bias && typeof bias === "object" && Object.hasOwn(bias, "__proto__")) {
        throw new InvalidRequestError("Invalid key in logit_bias: '__proto__' (keys are token ids).", "logit_bias", "invalid_value");
      }
      return unserialisable(body);
    })
    // 3. Guards that need the body or the key: signature → rate limit. Transform runs before schema
    //    validation, so even malformed requests count against the key's limits.
    .onTransform({ as: "global" }, async ({ request, set, body, server }) => {
      const state = stateOf(request);
      // Requests that arrived together are admitted one per loop turn, so streams and timers run between them.
      if (request.method === "POST") await admissionTurn();
      await guards.afterParse(request, state, body);
      // The body is in: a generation may now be silent for a long time (never before, or a trickled body
      // would hold its socket forever).
      if (request.method === "POST" && server) {
        server.timeout(request, 0);
        // The lift lasted past the answer, for the connection's whole life: every kept-alive connection that had
        // made one POST stayed open idle forever (a key holder could pile them up). Given back before the answer's
        // end is written (Bun ignores a timeout set once the response is complete): below for a whole answer or an
        // error, by the event stream (sse.ts onLastEvent) for a stream.
        state.idleAgain = () => { try { server.timeout(request, config.limits.idleTimeoutSeconds); } catch { /* the connection is gone */ } };
      }
      Object.assign(set.headers, state.headers);
      state.marks.guarded = performance.now();
    })
    // Headers decided inside a handler (prompt flags) reach the response too.
    .onAfterHandle({ as: "global" }, ({ request, set }) => {
      const state = stateOf(request);
      Object.assign(set.headers, state.headers);
      if (!state.deferredFinish) state.idleAgain?.();
      // A body no handler read: the answer closes the connection. Kept open, Bun would read and drop the rest of the
      // body for as long as the client sends (its own body limit is out of the way, listen.ts): gigabytes on one connection.
      if (bodyUnread(request) || deps.draining) set.headers.connection = "close"; // draining: clients reconnect elsewhere
    })
    // 4. The one error mapper.
    .onError({ as: "global" }, async ({ code, error, request }) => {
      arrived(request);
      const state = stateOf(request);
      // A wrong scope, an unknown route or an unparsable body still counts against the key (429 once over).
      const e = await guards.refused(request, state, toAppError(code, error, state.id, log.child({ traceId: state.trace.traceId })));
      state.status = e.status;
      state.errorCode = e.code ?? undefined;
      deps.settle(state); // free the key's concurrency slot now, not when the socket closes
      state.idleAgain?.();
      if (e.status === 499) return new Response(null, { status: 499 }); // nobody is listening
      return toResponse(e, { "x-request-id": state.id, ...state.headers, ...((bodyUnread(request) || deps.draining) && { connection: "close" }) });
    })
    .onAfterResponse({ as: "global" }, ({ request, set }) => {
      arrived(request);
      const state = stateOf(request);
      if (state.deferredFinish) return;
      state.status ??= typeof set.status === "number" ? set.status : 200;
      deps.finish(state);
    })
    // 5. The API.
    .use(healthRoutes(deps))
    .use(metricsRoutes(deps))
    .use(modelRoutes(deps))
    .use(chatRoutes(deps))
    .use(completionRoutes(deps))
    .use(embeddingRoutes(deps))
    .use(responsesRoutes(deps))
    .use(tokenizeRoutes(deps))
    .use(docsRoutes(deps));

  return Object.assign(app, { deps });
}

export type App = ReturnType<typeof createApp>;
