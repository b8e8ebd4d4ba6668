/** appliance serve — run the API server in the foreground (what the service unit runs). */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../../config/schema";
import { ConfigError } from "../../config/load";
import { backendAvailable, candidateGpu, preflightGpu } from "../../engine/gpu";
import { usableCpus } from "../../engine/cpu-budget";
import { LlamaEngine } from "../../engine/llama";
import { prepareNative } from "../../engine/native";
import { controlTokens, createGateway } from "../../gateway/gateway";
import { createGuards } from "../../guards";
import { bindAllowed } from "../../guards/host";
import { KeyStore, keysFilePath } from "../../guards/keys";
import { modelsDirOf, readManifest } from "../../integrity/manifest";
import { ModelIntegrityError, resolveModels } from "../../integrity/resolve";
import { alert } from "../../integrity/verify";
import { AuditLog } from "../../log/audit";
import { createLogger, type Logger } from "../../log/logger";
import { createApp } from "../../server/app";
import { listen } from "../../server/listen";
import { startKeepalive } from "../../server/sd-notify";
import { versionInfo } from "../../version";
import { layout } from "../../service/layout";
import { EXIT, parseWithConfig, type Command } from "../command";
import { verify } from "./verify";

/**
 * Inference threads: the configured count, or every CPU this process may use (affinity, cgroup quota, online);
 * never more than those, because the prebuilt engine's spinning threads collapse when oversubscribed.
 */
export function effectiveThreads(config: Pick<Config, "threads">, budget = usableCpus()) {
  return { threads: Math.min(config.threads || budget.cpus, budget.cpus), requested: config.threads, budget };
}

/** Everything the server needs, built from one config; shared by serve and the tests of the binary path. */
export async function startServer(config: Readonly<Config>, log: Logger, onProgress?: (status: string) => void) {
  if (!bindAllowed(config)) {
    throw new ConfigError(`refusing to bind ${config.host}: a non-loopback address needs --allow-public-bind and auth on`);
  }
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const keys = config.auth ? new KeyStore(keysFilePath(config.stateDir), Date.now, (m) => log.error(m)) : undefined;
  if (keys && keys.list().filter((k) => !k.revoked).length === 0) {
    log.warn({ file: keys.file }, "no API keys yet: every request but /health will get 401. Create one with: appliance keys create --name NAME");
  }
  if (!config.auth) log.warn("auth is OFF: anyone who can reach the port can use the API");
  // Gateway mode: upstream models need no local file, so a server fronting only upstreams loads none.
  const gateway = createGateway(config, log);
  const { models, warnings } = gateway && !config.model.length && !readManifest(modelsDirOf(config)).length
    ? { models: [], warnings: [] } : await resolveModels(config, onProgress);
  const both = models.find((m) => gateway?.serves(m.id));
  if (both) throw new ConfigError(`invalid config: upstreams: model ${both.id} is both a local model and an upstream one`, "upstreams");
  for (const w of warnings) log.warn(w);

  onProgress?.("checking the native libraries");
  const native = await prepareNative(config.stateDir);
  if (native) log.info(native, "native libraries verified");
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
  }
  const { threads, requested, budget } = effectiveThreads(config);
  // One line that says what was chosen and why (tests and operators read it; a quota of 1 CPU must mean 1 thread).
  log.info({ threads, requested: requested || "auto", usableCpus: budget.cpus, limitedBy: budget.limitedBy, onlineCpus: budget.online,
    ...(budget.quota !== undefined && { cpuQuota: budget.quota }) }, "cpu threads");
  if (requested > budget.cpus) log.warn({ requested, threads }, "threads lowered to the CPUs this process may use (more would collapse decode)");
  const engine = await LlamaEngine.create({
    models, threads, ctxSize: config.ctxSize, parallel: config.parallel, maxQueue: config.maxQueue, gpu, gpuLayers: config.gpuLayers, log, onProgress,
  });
  // The log gets a copy of every audit checkpoint: under systemd that is the journal, out of the service account's reach.
  const audit = config.audit ? new AuditLog(path.join(config.stateDir, "audit.jsonl"), { log }) : undefined;
  const guards = createGuards({ config, engine: controlTokens(gateway, engine), keys, audit, log, clock: Date.now });
  const app = createApp({ config, engine, log, guards, version: versionInfo(), gateway });
  gateway?.start();
  // Both start checks refuse the start on a mismatch, so a running server reports them passed (checked just
  // now, before loading); models served unverified (--allow-unverified) count as not passed.
  app.deps.metrics.integrityChecked("models", warnings.length === 0);
  if (native) app.deps.metrics.integrityChecked("native", true);
  return { app, engine, keys };
}


export const serve: Command = {
  name: "serve",
  summary: "Run the API server in the foreground",
  usage: "appliance serve [--model PATH]... [--host H] [--port N] [--threads N] [--ctx-size N] [--parallel N] [--max-queue N] [--state-dir DIR] [--config FILE] [--gpu auto|cuda|vulkan|metal|off]",
  async run(argv) {
    if (argv.includes(LAUNCHD)) return launchdServe(argv.filter((a) => a !== LAUNCHD));
    return serveNow(argv);
  },
};

/**
 * `serve --launchd` (what the plist runs; launchd has no ExecStartPre and no start limit): verify first, like
 * the systemd unit's pre-start check, and end a permanent failure (verify failed, bad config, a tampered model)
 * with exit 0, so KeepAlive {SuccessfulExit: false} does not respawn it every ThrottleInterval forever. Crashes
 * and other failures still exit non-zero and are restarted.
 */
const LAUNCHD = "--launchd";

async function launchdServe(argv: string[]): Promise<number> {
  const checked = await verify.run(["--quiet", "--skip-models"]);
  if (checked !== EXIT.OK) {
    console.error("appliance: verify failed before start; staying stopped until fixed (then: sudo launchctl kickstart system/local.appliance.server)");
    return EXIT.OK;
  }
  try {
    const code = await serveNow(argv, layout("launchd").logDir);
    return code === EXIT.FAIL && permanentFailure ? EXIT.OK : code;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`appliance serve: ${e.message} (staying stopped until the config is fixed)`);
    return EXIT.OK;
  }
}

let permanentFailure = false;

async function serveNow(argv: string[], alertDir = process.env.LOGS_DIRECTORY?.split(":")[0]): Promise<number> {
  const { config } = parseWithConfig(argv);
  const log = createLogger(config.logLevel);
  // Under systemd: start-timeout extensions while models hash and load (READY=1 follows once listening).
  const keepalive = startKeepalive();
  let started;
  try {
    started = await startServer(config, log, keepalive.progress);
  } catch (e) {
    if (e instanceof ConfigError) throw e; // exit 2
    log.error({ err: { name: (e as Error).name, message: (e as Error).message } }, "cannot start");
    // serve is where models are checked before every start (the unit's verify leaves them to it): alert like verify.
    if (e instanceof ModelIntegrityError) {
      alert([{ name: "models", status: "fail", detail: e.message }], alertDir);
      permanentFailure = true;
    }
    console.error(`appliance: ${(e as Error).message}`);
    return EXIT.FAIL;
  } finally {
    keepalive.stop();
  }
  const { app, engine, keys } = started;
  return listen(app, engine, log, { host: config.host, port: config.port, maxBodyBytes: config.maxBodyBytes, graceMs: config.shutdownGraceMs },
    () => { try { keys?.reload(true); } catch (e) { log.error({ err: (e as Error).message }, "keys reload failed"); } });
}
