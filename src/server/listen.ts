/**
 * Binds the app, and drains on SIGTERM/SIGINT: stop accepting, let in-flight
 * generations finish for the grace period, cancel the rest, dispose the engine
 * (session → context → model → llama), exit 0. SIGHUP re-reads the keys file.
 */
import type { Engine } from "../engine/engine";
import type { Logger } from "../log/logger";
import type { App } from "./app";
import { prepareWireSchemas } from "./openai/wire";
import { sdNotify } from "./sd-notify";
import { serverTls } from "./tls";

/** After cancelling, how long cancelled responses get to finish writing before connections are closed. */
const CLOSE_AFTER_CANCEL_MS = 5_000;
/**
 * How long after ready the request schemas and the response scanner's analysis are built (20-40 ms of JS in one
 * stretch) and then each model's first evaluation run. Built at once, they held the first /health a readiness probe
 * sends right after the port opens; a request that needs one sooner builds or runs it itself, as without this step.
 */
const WARM_AFTER_MS = 250;

/**
 * The warm-ups listen schedules once ready, one after the other (each has the CPUs to itself); none once draining.
 * Each is only ahead of time: a failure is logged, and what it would have built is built by the first request.
 */
async function warmAfterReady(app: App, engine: Engine, log: Logger): Promise<void> {
  try {
    app.deps.guards.prepare();
    await prepareWireSchemas();
  } catch (e) {
    log.warn({ err: String(e) }, "building the request schemas or scanner tables ahead failed: the first request builds them");
  }
  if (app.deps.draining) return;
  const models = await engine.warmUp?.().catch((e: unknown) => [{ model: "*", error: String(e) }]) ?? [];
  for (const m of models) {
    if ("error" in m) log.warn(m, "model warm-up failed: the first request pays the model's first evaluation");
    else if ("skipped" in m) log.info(m, "model warm-up skipped");
    else log.info(m, "model warmed up");
  }
}

/** No body limit here: maxBodyBytes is the guards' to enforce (guards/body.ts), not Bun's (BUN_BODY_LIMIT). */
export interface ListenOptions { host: string; port: number; graceMs: number }

/**
 * Bun's own request body limit: none to speak of. Over its limit Bun answers 413 itself, with no body, before any
 * handler runs (the openai SDK showed "413 status code (no body)"); the guards answer every oversize body with the
 * JSON error instead, from Content-Length before reading and by counting a streamed body's bytes (guards/body.ts).
 * A body nobody reads is not buffered (TCP back-pressure holds the sender), and the answer to its request closes
 * the connection (app.ts, guards/body.ts `bodyUnread`), so this limit protects nothing.
 */
const BUN_BODY_LIMIT = Number.MAX_SAFE_INTEGER;

/** What `listen` binds with (tests listen with exactly these). */
export function listenOptions(opts: Pick<ListenOptions, "host" | "port">, tls: ReturnType<typeof serverTls>, idleTimeout: number) {
  // Idle connections are dropped after limits.idleTimeoutSeconds; generation
  // requests lift that for themselves (app.ts), since a long non-streamed answer sends nothing for a while.
  // reusePort false: Elysia turns SO_REUSEPORT on, and then a second server on a used port "listens" and
  // silently splits the traffic with the first. Without it the bind fails with EADDRINUSE, as it should.
  return { hostname: opts.host, port: opts.port, maxRequestBodySize: BUN_BODY_LIMIT, idleTimeout, reusePort: false, tls };
}

export function listen(app: App, engine: Engine, log: Logger, opts: ListenOptions, onHup?: () => void): Promise<number> {
  const tls = serverTls(app.deps.config); // a bad cert/key/CA is a ConfigError (exit 2), thrown before binding
  try {
    app.listen(listenOptions(opts, tls, app.deps.config.limits.idleTimeoutSeconds));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "EADDRINUSE" ? "address in use (is another appliance or server running on it?)" : (e as Error).message;
    log.error({ host: opts.host, port: opts.port, code }, `cannot listen: ${why}`);
    console.error(`appliance: cannot listen on ${opts.host}:${opts.port}: ${why}`);
    return engine.dispose().then(() => 1, () => 1);
  }
  const server = app.server!;
  // An IPv6 address in a URL is bracketed (it read http://:::8000 on host "::").
  const host = server.hostname?.includes(":") ? `[${server.hostname}]` : server.hostname;
  log.info({ url: `${tls ? "https" : "http"}://${host}:${server.port}`, port: server.port, tls: !!tls, mtls: !!tls?.requestCert }, "listening");
  // Type=notify: systemd calls the service started only now (models verified and loaded, port bound).
  sdNotify({ READY: 1, STATUS: `serving on ${server.hostname}:${server.port}`, MAINPID: process.pid });
  // Ready first; then, while nothing is asked, what the first request would otherwise build or run itself: the request
  // schemas and scanner tables (lazily built, off the start path), then each model's first evaluation (the slowest:
  // engine/llama.ts warmUp). Not at once: that evaluation keeps every CPU of a small machine busy, and a readiness
  // probe's first /health, sent right after the port opens, would wait for one.
  const warming = setTimeout(() => void warmAfterReady(app, engine, log).catch(() => undefined), WARM_AFTER_MS);
  warming.unref();

  return new Promise((resolve) => {
    let draining = false;
    let deadline = 0;
    const drain = async (signal: string) => {
      if (draining) {
        // A second Ctrl-C (or SIGTERM) ends the grace period now: in-flight answers are cut as at its end (their
        // text so far, finish_reason "length"), then the same orderly exit. It was ignored: serve sat out the grace.
        if (deadline > Date.now()) log.warn({ signal, inflight: app.deps.inflight.size }, "second signal: ending the grace period now");
        deadline = 0;
        return;
      }
      draining = true;
      clearTimeout(warming); // not started yet: nothing to warm for a server that stops
      app.deps.draining = true; // /ready answers 503 from now on
      log.info({ signal, inflight: app.deps.inflight.size }, "shutting down");
      sdNotify({ STOPPING: 1 });
      // The port stays open while draining: Bun's stop(false) would also stop dispatching requests on kept-alive
      // connections, which then got no answer at all. Every new request now gets a 503 not_ready with
      // `Connection: close` (app.ts), and every answer during the drain closes its connection.
      deadline = Date.now() + opts.graceMs;
      // Requests still being read count too (Bun's pendingRequests): one whose body was arriving was not in flight
      // yet, so the drain ended at once and its connection was closed unanswered (a raw-socket probe).
      const open = () => app.deps.inflight.size + server.pendingRequests;
      while (open() > 0 && Date.now() < deadline) await Bun.sleep(50);
      if (app.deps.inflight.size > 0) {
        log.warn({ cancelled: app.deps.inflight.size }, "grace period over: cancelling in-flight requests");
        app.deps.inflight.cancelAll();
        // Let the cancelled responses write their last bytes and close: a force-close now would reset the
        // connections mid-stream (ECONNRESET on a loaded machine). Bounded, so a stuck one cannot hold the exit.
        const closeBy = Date.now() + CLOSE_AFTER_CANCEL_MS;
        while (app.deps.inflight.size > 0 && Date.now() < closeBy) await Bun.sleep(20);
      }
      server.stop(true);
      await app.deps.tracer?.close(); // the last spans, bounded by the export timeout
      await engine.dispose();
      log.info("stopped");
      resolve(0);
    };
    process.on("SIGTERM", () => void drain("SIGTERM"));
    process.on("SIGINT", () => void drain("SIGINT"));
    process.on("SIGHUP", () => { log.info("SIGHUP: reloading keys"); onHup?.(); });
  });
}
