/**
 * The one composition root: config → (models checked) → engine, and guards → app, built while the engine's first
 * context is (on a slot bound to the engine once it is loaded). `serve`, the tests and the
 * benchmarks all build the server here, so what they exercise is wired exactly as what users run. Tests and
 * benchmarks may hand in an engine already loaded (one tiny-model engine serves a whole test file), and their own
 * key store, audit log, clock or gateway; anything not handed in is built from the config as `serve` does.
 */
import fs from "node:fs";
import path from "node:path";
import { dirFlags } from "../config/load";
import type { Config } from "../config/schema";
import { usableCpus } from "../engine/cpu-budget";
import { backendAvailable, candidateGpu, preflightGpu } from "../engine/gpu";
import type { Engine } from "../engine/engine";
import { EngineSlot } from "../engine/engine-slot";
import { LlamaEngine } from "../engine/llama";
import { CONTEXT_BUILDING } from "../engine/llama-load";
import { NATIVE_LOCK_WAIT, prepareNative } from "../engine/native";
import { cpuBackend } from "../engine/cpu-backend";
import { selectEngine } from "../engine/engine-select";
import { ompBindingTook } from "../engine/engine-build-env";
import { controlTokens, createGateway, refuseClash, type Gateway } from "../gateway/gateway";
import { createGuards } from "../guards";
import { checkBind } from "../guards/host";
import { lockdownFile, readLockdown } from "../guards/lockdown";
import { KeyStore, keysFilePath } from "../guards/keys";
import { modelsDirOf, readManifest } from "../integrity/manifest";
import { modelFiles, resolveModels } from "../integrity/resolve";
import { AuditLog } from "../log/audit";
import { atLeast, type Logger } from "../log/logger";
import type { StartPhases } from "../util/start-phases";
import { versionInfo } from "../version";

/**
 * Inference threads: the configured count, or every CPU this process may use (affinity, cgroup quota, online);
 * never more than those, because the prebuilt engine's spinning threads collapse when oversubscribed.
 */
export function effectiveThreads(config: Pick<Config, "threads">, budget = usableCpus()) {
  return { threads: Math.min(config.threads || budget.cpus, budget.cpus), requested: config.threads, budget };
}

export interface ServerOptions {
  log: Logger;
  /** An engine already loaded: no model resolution, native check or GPU preflight (tests, benchmarks). */
  engine?: LlamaEngine;
  /** Default: the state dir's keys file when auth is on. */
  keys?: KeyStore;
  /** Default: the state dir's audit.jsonl when audit is on. */
  audit?: AuditLog;
  /** Default: built from the config's upstreams (none configured: no gateway). */
  gateway?: Gateway;
  /** Wall clock in ms (injected so tests never sleep). */
  clock?: () => number;
  /** Start progress (systemd's start-timeout extensions while models hash and load). */
  onProgress?: (status: string) => void;
  /** Start phases to time (serve logs them as `start phases`). */
  phases?: StartPhases;
}

/**
 * The HTTP application's modules (Elysia, the routes, the OpenAPI docs, prom-client: 48 of the 210 files and packages
 * serve's static imports reached) are imported while llama.cpp builds the first model's context on its own thread
 * (engine/context-init.ts), when the JS thread has nothing else to do: statically imported, they were evaluated with
 * the rest of the program before anything started (bench-cold's `bundle` phase), and the context's native work was
 * waited for with the JS thread idle (bench-cold --before, unit environment: 28 M 89 -> 83 ms, 155 M 139 -> 130 ms;
 * README, Benchmarks).
 * A server without an engine to load imports them at once. Nothing else in serve's static imports reaches them (a
 * second importer would evaluate them up front again: tests/server/app-deferred.test.ts).
 */
let appModule: Promise<typeof import("./app")> | undefined;
export function loadApp(): Promise<typeof import("./app")> {
  if (!appModule) {
    appModule = import("./app");
    appModule.catch(() => {}); // awaited by assemble(), which reports a failure; not an unhandled rejection meanwhile
  }
  return appModule;
}

/** Logged (debug) when serve builds its guards and HTTP app, while llama.cpp builds the first model's context. */
export const APP_BUILT_EARLY = "building the guards and the HTTP app while llama.cpp builds the context";

/** Builds everything the server needs from one config; never listens (server/listen.ts does). */
export async function createServer(config: Readonly<Config>, opts: ServerOptions) {
  const { log } = opts;
  const clock = opts.clock ?? Date.now;
  checkBind(config);
  // Nothing to serve is said before a new state dir is made: `serve --state-dir /typo` left a new dir with an audit key,
  // log and locks behind its "no models" (exit 2). A gateway may serve only upstreams' models. An existing state dir:
  // resolveModels says it, without reading the manifest twice on every start.
  if (!config.upstreams.length && !opts.gateway && !fs.existsSync(config.stateDir)) modelFiles(config);
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  // The audit log first: it holds the state dir's one-server lock (log/audit.ts), so a second server on this state dir
  // stops here, before it writes the native libraries or anything else into it. The log gets a copy of every audit
  // checkpoint: under systemd that is the journal, out of the service account's reach.
  const audit = opts.audit ?? (config.audit ? new AuditLog(path.join(config.stateDir, "audit.jsonl"), { log: atLeast(log, "info") }) : undefined);
  opts.phases?.mark("audit tail");
  try {
    return await assemble(config, opts, log, clock, audit);
  } catch (e) {
    if (!opts.audit) audit?.close(); // a failed start lets go of the state dir (in-process callers may try again)
    throw e;
  }
}

async function assemble(config: Readonly<Config>, opts: ServerOptions, log: Logger, clock: () => number, audit: AuditLog | undefined) {
  const keys = opts.keys ?? (config.auth ? new KeyStore(keysFilePath(config.stateDir), clock, (m) => log.error(m)) : undefined);
  if (!opts.keys && keys && keys.list().filter((k) => !k.revoked).length === 0) {
    log.warn({ file: keys.file }, `no API keys yet: every request but /health will get 401. Create one with: appliance keys create --name NAME${dirFlags(config)}`);
  }
  if (!config.auth) log.warn("auth is OFF: anyone who can reach the port can use the API");
  // A restart does not end a lockdown (the file stays): say so at start, where an operator reading the log looks.
  const locked = readLockdown(config.stateDir);
  if (locked) {
    log.warn({ file: lockdownFile(config.stateDir), ...(locked !== "unreadable" && locked) },
      `starting in lockdown: every route but /health and /metrics answers 503 until: appliance lockdown --off${dirFlags(config)}`);
  }
  const gateway = opts.gateway ?? createGateway(config, log);
  opts.phases?.mark("keys");
  // The guards and the app are built on an engine slot while llama.cpp builds the first context (the JS thread idle
  // then), bound to the engine once loaded: built after it, they were 7-10 ms of every start (bench-cold's `app`).
  // Beside it they cost as much only where llama.cpp builds the context faster than they are built (a tiny model).
  const build = (engine: Engine) => {
    const built = loadApp().then(({ createApp }) => {
      const guards = createGuards({ config, engine: controlTokens(gateway, engine), keys, audit, log, clock });
      const app = createApp({ config, engine, log, guards, version: versionInfo(), gateway, clock });
      // Its request handler composed here too, off the start path like the rest (listen binds with it: bind-adapter.ts).
      app.compile();
      return { guards, app };
    });
    built.catch(() => {}); // awaited below, which reports a failure; not an unhandled rejection meanwhile
    return built;
  };
  const slot = opts.engine ? undefined : new EngineSlot();
  let early: ReturnType<typeof build> | undefined, failed = false;
  const whileContextBuilds = () => {
    // The first model's context only (each model has one); never after the start failed (context-init.ts may still
    // report the building of a context that failed before it began).
    if (early || failed) return;
    log.debug(APP_BUILT_EARLY);
    early = build(slot!);
  };
  let loaded;
  try {
    loaded = opts.engine ? undefined : await loadEngine(config, log, gateway, opts.onProgress, opts.phases, whileContextBuilds);
  } catch (e) {
    failed = true;
    // A start that fails after the guards and app were built lets go of what they opened (a Redis connection, the
    // trace exporter's timer): in-process callers may try again.
    void early?.then(async ({ guards, app }) => { guards.close(); await app.deps.tracer?.close(); }).catch(() => {});
    throw e;
  }
  const engine = opts.engine ?? loaded!.engine;
  slot?.bind(engine);
  const { guards, app } = await (slot ? early ??= build(slot) : build(engine));
  if (audit) app.deps.metrics.attachAudit(audit);
  if (!opts.gateway) gateway?.start(); // health checks of the upstreams built here (a test drives its own)
  if (loaded) {
    // Both start checks refuse the start on a mismatch, so a running server reports them passed (checked just
    // now, before loading); models served unverified (--allow-unverified) count as not passed.
    app.deps.metrics.integrityChecked("models", loaded.verified);
    if (loaded.native) app.deps.metrics.integrityChecked("native", true);
  }
  opts.phases?.mark("app");
  return { app, engine, keys, guards, gateway, audit };
}

/** Models checked against the manifest, native libraries verified, GPU preflighted, then the engine loaded. */
async function loadEngine(config: Readonly<Config>, log: Logger, gateway: Gateway | undefined, onProgress: ((status: string) => void) | undefined,
  phases: StartPhases | undefined, whileContextBuilds: () => void) {
  // Gateway mode: upstream models need no local file, so a server fronting only upstreams loads none.
  // Chat-template trials (child processes) run on while the native libraries are checked; awaited before loading.
  const { models, warnings, templates } = gateway && !config.model.length && !readManifest(modelsDirOf(config)).length
    ? { models: [], warnings: [], templates: Promise.resolve() } : await resolveModels(config, { onProgress, phases, deferTemplates: true, warn: (m) => log.warn(m) });
  if (gateway) refuseClash(models.map((m) => m.id), (id) => gateway.serves(id));
  for (const w of warnings) log.warn(w);
  // Says whether each model was read and hashed at this start or its sha256 came from the root-owned hash cache.
  for (const m of models) log.info({ model: m.id, sha256: m.sha256, source: m.hashed ? "hashed" : "hash cache", ms: m.hashMs }, "model checked");

  onProgress?.("checking the native libraries");
  const native = await prepareNative(config.stateDir, undefined, undefined, {
    onWait: (lock) => log.warn({ lock }, `${NATIVE_LOCK_WAIT}: it holds the lock`),
  });
  phases?.mark("native check");
  if (native) log.info(native, "native libraries verified");
  // A built engine (appliance engine build) is verified like the embedded libraries and loaded instead (engine.use).
  const chosen = selectEngine(config.engine);
  log.info(chosen, "engine");
  let gpu = candidateGpu(config.gpu);
  if (gpu && config.gpu === "auto" && !backendAvailable(gpu)) {
    log.info({ gpu }, "gpu auto: this build carries no libraries for that GPU; using the CPU");
    gpu = false;
  }
  if (gpu) {
    onProgress?.("GPU preflight");
    const pre = await preflightGpu(gpu, config.stateDir);
    if (!pre.gpu) log.warn({ reason: pre.reason }, "GPU preflight failed: falling back to CPU");
    else log.info({ gpu, ms: pre.ms }, "GPU preflight passed");
    gpu = pre.gpu;
    phases?.mark("gpu preflight");
  }
  const { threads, requested, budget } = effectiveThreads(config);
  // One line that says what was chosen and why (tests and operators read it; a quota of 1 CPU must mean 1 thread).
  // auto: `threads` is the most; the count used follows free CPU (engine/thread-governor.ts).
  log.info({ threads, policy: requested ? "fixed" : "adaptive", requested: requested || "auto", usableCpus: budget.cpus, limitedBy: budget.limitedBy, onlineCpus: budget.online,
    ...(budget.quota !== undefined && { cpuQuota: budget.quota }) }, "cpu threads");
  if (requested > budget.cpus) log.warn({ requested, threads }, "threads lowered to the CPUs this process may use (more would collapse decode)");
  await templates; // before the engine renders any template (it does at load)
  phases?.mark("template preflight");
  // The engine's progress tells its phases apart: binding (getLlama) → node-llama-cpp's checks of a model (GGUF read,
  // memory estimate) → loading it → its context.
  let stage = "getLlama";
  const progress = (status: string) => {
    const next = status.startsWith("llama.cpp binding opened") ? "model check" : status.startsWith("loading model") ? "model load"
      : status.startsWith("creating the context") ? "context" : status.startsWith("context created") ? "model setup" : stage;
    if (next !== stage) { phases?.mark(stage); stage = next; }
    // The app is imported and built once llama.cpp builds the context on its own thread (engine/context-init.ts: at
    // "creating the context" the import ran first and held node-llama-cpp's JS before that native call). A microtask:
    // node-llama-cpp awaits that call right after making it, and a macrotask could come after the context was built
    // (on a busy machine its completion was handled first, and the app was built after the load, as it was before).
    if (status.startsWith(CONTEXT_BUILDING)) queueMicrotask(whileContextBuilds);
    onProgress?.(status);
  };
  // The embedded CPU variant library remembered for this CPU, loaded alone (engine/cpu-backend.ts).
  const cpu = native ? cpuBackend(config.stateDir, native.dir, gpu) : undefined;
  const engine = await LlamaEngine.create({
    cpuBackend: cpu, models, threads, adaptiveThreads: !requested, openmp: !!chosen.omp, ctxSize: config.ctxSize, parallel: config.parallel, promptCache: config.promptCache, maxQueue: config.maxQueue, gpu, gpuLayers: config.gpuLayers, log, onProgress: progress,
    chatTemplate: { ms: config.limits.chatTemplateMs, chars: config.limits.chatTemplateChars, workers: config.limits.chatTemplateWorkers },
  });
  phases?.mark(stage);
  // The start line shows the OpenMP settings asked for; whether the binding took is known only once libgomp loaded.
  if (chosen.omp && chosen.omp.OMP_PROC_BIND === undefined) {
    log.info("OpenMP thread binding left off: sched_setaffinity is not permitted here (the installed systemd unit denies it; README, Engine build, has the drop-in)");
  } else if (chosen.omp && ompBindingTook(chosen.omp) === false) {
    log.warn({ OMP_PROC_BIND: chosen.omp.OMP_PROC_BIND }, "OpenMP thread binding not in effect (sched_setaffinity refused, e.g. by the systemd unit's SystemCallFilter): threads run unbound");
  }
  return { engine, native, verified: warnings.length === 0 };
}
