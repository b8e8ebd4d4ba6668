/**
 * Elysia's Bun adapter with a `listen` that binds once. Elysia's own listen composes the app's request handler,
 * maps every route into Bun's native route table and binds; then, once its `promisedModules` settle (a microtask
 * later, before the first request is read), composes the handler and maps the routes again, reloads the server with
 * them and asks for a garbage collection. On a small machine that was ~10 ms of a cold start (bench-cold's `listen`
 * phase, scripts/bench-cold.ts) and more before the first /health answer, for an app that has no lazily loaded
 * modules to wait for. Here the handler is composed once (create-server.ts composes it while llama.cpp builds the
 * context) and every request goes through it: the same handler `app.handle` runs, which the in-process tests drive,
 * instead of a second, per-route one from Bun's table.
 *
 * The options Elysia's listen defaults are kept (reusePort on, a 30 s idle timeout, development off in production),
 * the app's `serve` settings over them and the caller's over those, as Elysia merges them; `onStart` hooks run.
 */
import { BunAdapter } from "elysia/adapter/bun";
import type { ElysiaAdapter } from "elysia/adapter";

type Listen = ReturnType<ElysiaAdapter["listen"]>;

export const bindOnceAdapter: ElysiaAdapter = {
  ...BunAdapter,
  listen: (app) => ((options, callback) => {
    const given = typeof options === "object" ? options : { port: Number(options) };
    const server = Bun.serve({
      development: process.env.NODE_ENV !== "production", reusePort: true, idleTimeout: 30,
      ...app.config.serve, ...given, fetch: app.fetch,
    } as Parameters<typeof Bun.serve>[0]);
    app.server = server;
    for (const hook of app.event.start ?? []) hook.fn(app);
    callback?.(server);
  }) as Listen,
};
