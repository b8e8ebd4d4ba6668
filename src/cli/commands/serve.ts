/** appliance serve — run the API server in the foreground (what the service unit runs). */
import fs from "node:fs";
import { ConfigError } from "../../config/load";
import { KeyFileError } from "../../guards/keys";
import { ModelIntegrityError } from "../../integrity/resolve";
import { alert } from "../../integrity/verify";
import { createLogger, type Logger } from "../../log/logger";
import { parseFaultCost } from "../../util/fault-probe";
import { PAGE_PROBE, REEXEC_MARK } from "../../util/huge-pages";
import { createServer } from "../../server/create-server";
import { listen } from "../../server/listen";
import { serverTls } from "../../server/tls";
import { startKeepalive } from "../../server/sd-notify";
import { StartPhases } from "../../util/start-phases";
import { startIsOver } from "../../util/jit-policy";
import { layout } from "../../service/layout";
import { EXIT, parseWithConfig, type Command } from "../command";
import { verify } from "./verify";

export const serve: Command = {
  name: "serve",
  summary: "Run the API server in the foreground",
  usage: "appliance serve [--model PATH]... [--host H] [--port N] [--threads N] [--ctx-size N] [--parallel N] [--max-queue N] [--state-dir DIR] [--config FILE] [--gpu auto|cuda|vulkan|metal|off]   (every top-level setting is a flag too: --allow-public-bind, --no-auth, --tls-cert…; README, Configuration)",
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
    return code === EXIT.INTEGRITY ? EXIT.OK : code;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`appliance serve: ${e.message} (staying stopped until the config is fixed)`);
    return EXIT.OK;
  }
}

async function serveNow(argv: string[], alertDir = process.env.LOGS_DIRECTORY?.split(":")[0]): Promise<number> {
  const phases = new StartPhases();
  phases.mark("bundle"); // process start → here: loading the compiled program and its imports
  const { config } = parseWithConfig(argv);
  // Config errors first (exit 2), before the state dir is taken or a model is read: a bad cert/key/CA too, which
  // listen() would find only after the engine loaded (it reads them again to bind).
  serverTls(config);
  refuseRootOnServiceState(config.stateDir);
  const log = createLogger(config.logLevel);
  logPageProbe(log);
  phases.mark("config");
  // Under systemd: start-timeout extensions while models hash and load (READY=1 follows once listening).
  const keepalive = startKeepalive();
  let started;
  try {
    started = await createServer(config, { log, onProgress: keepalive.progress, phases });
  } catch (e) {
    if (e instanceof ConfigError) throw e; // exit 2
    // A keys file that is broken, exposed or unreadable needs the operator, as a bad config does: exit 2, which the
    // unit does not restart (exit 1 was retried ten times, each failing the same way).
    if (e instanceof KeyFileError) throw new ConfigError(`keys file unusable: ${e.message}`, "keys");
    log.error({ err: { name: (e as Error).name, message: (e as Error).message } }, "cannot start");
    // serve is where models are checked before every start (the unit's verify leaves them to it): alert like verify.
    if (e instanceof ModelIntegrityError) {
      alert([{ name: "models", status: "fail", detail: e.message }], alertDir);
      console.error(`appliance: ${e.message}`);
      return EXIT.INTEGRITY;
    }
    console.error(`appliance: ${(e as Error).message}`);
    return EXIT.FAIL;
  } finally {
    keepalive.stop();
  }
  const { app, engine, keys } = started;
  const served = listen(app, engine, log, { host: config.host, port: config.port, graceMs: config.shutdownGraceMs }, () => {
    try { keys?.reload(true); } catch (e) { log.error({ err: (e as Error).message }, "keys reload failed"); }
    configSince(argv, config, log);
  });
  phases.mark("listen"); // listen() binds synchronously; the promise is the server's whole life
  startIsOver(); // requests' code gets the normal JIT from here (util/jit-policy.ts)
  log.debug({ phases: phases.ms, totalMs: phases.total }, "start phases");
  return served;
}

/**
 * SIGHUP re-reads the keys only. The config is read again to say what a restart would meet: an edit that was not
 * applied, or a file the next start refuses (exit 2, which the unit does not restart). A live-service run changed the
 * config, reloaded (exit 0, nothing said), and found the service down at the next restart.
 */
function configSince(argv: string[], running: Readonly<Record<string, unknown>>, log: Logger) {
  let now: Readonly<Record<string, unknown>>;
  try {
    now = parseWithConfig(argv).config;
  } catch (e) {
    log.error({ err: (e as Error).message }, "reload: the config no longer loads; this server keeps its start's settings, and the next start will fail (exit 2) until it is fixed");
    return;
  }
  const changed = [...new Set([...Object.keys(running), ...Object.keys(now)])].filter((k) => JSON.stringify(running[k]) !== JSON.stringify(now[k]));
  if (changed.length) log.warn({ changed }, "reload: the config changed since this server started; a reload re-reads only the keys: restart to apply it");
}

/**
 * Where the huge-page decision was measured (a VM that reports freed memory to its host: util/huge-pages.ts), by this
 * start or by install for the unit: what it found and what this process runs with, so a slow start can be read.
 */
function logPageProbe(log: Logger) {
  const probe = parseFaultCost(process.env[PAGE_PROBE]);
  if (!probe) return;
  const hugePages = /(^|:)glibc\.malloc\.hugetlb=1(:|$)/.test(process.env.GLIBC_TUNABLES ?? "");
  // launch.ts keeps the variable only from this start's re-exec or the unit (APPLIANCE_SERVICE), or sets it itself.
  const by = process.env.APPLIANCE_SERVICE && !process.env[REEXEC_MARK] ? "install" : "this start";
  log.info({ hugePages, measuredBy: by, firstTouch2MiBMs: { hugePage: probe.hugeMs, smallPages: probe.smallMs } }, "memory pages measured");
}

/**
 * Root serving the service account's state dir (`sudo appliance serve` on an installed machine, which reads the
 * installed config) would leave root-owned files there (audit checkpoints, caches) that the service then cannot
 * write, every minute, until someone finds them. Refused: run it as the owner, or start the service.
 */
function refuseRootOnServiceState(stateDir: string) {
  if (process.getuid?.() !== 0) return;
  const owner = fs.statSync(stateDir, { throwIfNoEntry: false })?.uid;
  if (owner === undefined || owner === 0) return;
  throw new ConfigError(`${stateDir} belongs to uid ${owner} (the service account?), and serve runs as root: the files it writes there would be root's, which the service cannot write. Start the service (systemctl start appliance), run serve as that user (sudo -u '#${owner}' appliance serve …), or give it its own --state-dir`);
}
