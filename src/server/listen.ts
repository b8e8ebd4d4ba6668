/**
 * Binds the app, and drains on SIGTERM/SIGINT: stop accepting, let in-flight
 * generations finish for the grace period, cancel the rest, dispose the engine
 * (session → context → model → llama), exit 0. SIGHUP re-reads the keys file.
 */
import type { Engine } from "../engine/engine";
import type { Logger } from "../log/logger";
import type { App } from "./app";

export interface ListenOptions { host: string; port: number; maxBodyBytes: number; graceMs: number }

export function listen(app: App, engine: Engine, log: Logger, opts: ListenOptions, onHup?: () => void): Promise<number> {
  // Bun's own body limit sits well above ours, so ordinary oversize bodies get our JSON 413; only
  // absurd ones are cut off by Bun itself. Idle connections are dropped after 30 s; generation
  // requests lift that for themselves (app.ts), since a long non-streamed answer sends nothing for a while.
  app.listen({ hostname: opts.host, port: opts.port, maxRequestBodySize: opts.maxBodyBytes * 2 + 65_536, idleTimeout: 30 });
  const server = app.server!;
  log.info({ url: `http://${server.hostname}:${server.port}`, port: server.port }, "listening");

  return new Promise((resolve) => {
    let draining = false;
    const drain = async (signal: string) => {
      if (draining) return;
      draining = true;
      app.deps.draining = true; // /ready answers 503 from now on
      log.info({ signal, inflight: app.deps.inflight.size }, "shutting down");
      server.stop(false); // stop accepting; open requests carry on
      const deadline = Date.now() + opts.graceMs;
      while (app.deps.inflight.size > 0 && Date.now() < deadline) await Bun.sleep(50);
      if (app.deps.inflight.size > 0) {
        log.warn({ cancelled: app.deps.inflight.size }, "grace period over: cancelling in-flight requests");
        app.deps.inflight.cancelAll();
        await Bun.sleep(50);
      }
      server.stop(true);
      await engine.dispose();
      log.info("stopped");
      resolve(0);
    };
    process.on("SIGTERM", () => void drain("SIGTERM"));
    process.on("SIGINT", () => void drain("SIGINT"));
    process.on("SIGHUP", () => { log.info("SIGHUP: reloading keys"); onHup?.(); });
  });
}
