/** appliance install | uninstall | status | update | rollback — the service lifecycle. */
import fs from "node:fs";
import { nodeNet } from "../../util/node-builtins";
import os from "node:os";
import path from "node:path";
import { DEFAULTS, parseConfig } from "../../config/load";
import { removeBuiltEngines } from "../../engine/engine-versions";
import { selfCommand } from "../../engine/gpu";
import { SYSTEM_NATIVE_DIR } from "../../engine/native";
import { prebuiltEngineNote } from "../../engine/engine-select";
import { makeTinyModel } from "../../engine/tiny-model";
import { readLockdown } from "../../guards/lockdown";
import type { Config } from "../../config/schema";
import { checkGgufHeader } from "../../integrity/gguf-header";
import { readManifest, sha256File } from "../../integrity/manifest";
import { tryModel } from "../../integrity/model-preflight";
import { modelId } from "../../integrity/resolve";
import { readAccount } from "../../service/accounts";
import { install } from "../../service/installer";
import { waitHealthy } from "../../service/health-probe";
import { healthUrl, readInstance } from "../../service/instance";
import { layout, systemView, type Layout, type Platform } from "../../service/layout";
import { installOwnNative } from "../../service/native-sync";
import { PF_ANCHOR, pfRules, realRunner, runSteps, uninstallPaths, uninstallSteps } from "../../service/platform";
import { rollback, update } from "../../service/update";
import { releaseDigest } from "../update-signature";
import { EXIT, flagsToConfig, parseOwn, configFlagOptions, platformFlag, UsageError, type Command } from "../command";

const common = { root: { type: "string" }, platform: { type: "string" }, "dry-run": { type: "boolean" } } as const;

function target(values: Record<string, unknown>, doing = "installing into") {
  const root = path.resolve((values.root as string | undefined) ?? "/");
  if (root === "/" && process.getuid?.() !== 0 && !values["dry-run"]) throw new UsageError(`${doing} the system needs root (sudo), or use --root DIR / --dry-run`);
  return layout(platformFlag(values), root);
}

/** Settings install does not write into the config file: models are copied into the layout's models dir, whose state dir it owns. */
const NOT_PERSISTED = ["model", "stateDir", "modelsDir"];

/** The config the installed service runs with: what an earlier install persisted, overridden by every config flag given now. */
function installConfig(values: Record<string, unknown>, root: string) {
  const platform = platformFlag(values);
  const flags = flagsToConfig(values);
  const given = Object.fromEntries(Object.entries(flags).filter(([k]) => !NOT_PERSISTED.includes(k)));
  const persist = { ...readInstance({ platform, root }).persisted, ...given, stateDir: systemView(layout(platform, root)).stateDir };
  const config = parseConfig({ ...persist, model: flags.model ?? [] }); // a bad flag is a config error (exit 2) before anything is written
  // serve --port 0 picks a free port at each start: nobody could find an installed service's port, and status, update
  // and rollback (which check its /health) refused to run on an install that had saved it.
  if (config.port === 0) throw new UsageError("--port 0 picks a new port at every start; the installed service needs a fixed one (1-65535)");
  return { persist, config };
}

/** The installed instance as status/update/rollback see it: its layout and the URL of its /health (--port overrides). */
function instanceFor(values: Record<string, unknown>, env?: Record<string, string | undefined>) {
  // status also takes --config FILE / --state-dir DIR: a server run by hand on its own state dir (its port, its lockdown).
  const stateDir = values["state-dir"] as string | undefined;
  const inst = readInstance({ platform: platformFlag(values), root: values.root as string | undefined, file: values.config as string | undefined,
    ...(stateDir !== undefined && { flags: { stateDir } }), env });
  const port = values.port === undefined ? inst.config.port : Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError("--port must be 1-65535");
  return { inst, url: healthUrl({ ...inst.config, port }), mtls: !!inst.config.tlsClientCa };
}

const out = (s: string) => console.log(s);

/** With no model given and none installed, the built-in tiny demo model, so the service has something to serve. */
async function demoModel(say: (s: string) => void): Promise<string> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "appliance-demo-")), "demo.gguf");
  await makeTinyModel(file);
  say("no --model given: installing the built-in demo model 'demo' (random weights); add yours with: appliance models add FILE");
  return file;
}

export const installCmd: Command = {
  name: "install",
  summary: "Install as a hardened systemd/launchd service under its own account",
  usage: "appliance install [--platform systemd|launchd] [--root DIR] [--dry-run] [--binary FILE] [--model FILE]... [--port N] [--firewall]",
  async run(argv) {
    const { values } = parseOwn(argv, { ...configFlagOptions(), ...common, binary: { type: "string" }, firewall: { type: "boolean" }, "native-only": { type: "boolean" } });
    const l = target(values);
    // What update and rollback run on the binary they switch to: only this binary can write its embedded libraries.
    if (values["native-only"]) {
      if (values["dry-run"]) throw new UsageError("--native-only has no --dry-run");
      await installOwnNative(l, out);
      return EXIT.OK;
    }
    const { config, persist } = installConfig(values, l.root);
    const self = selfCommand();
    const binary = (values.binary as string | undefined) ?? (self.length === 1 ? self[0]! : undefined);
    if (!binary) throw new UsageError("running from source: pass --binary dist/appliance (build it with bun run build)");
    // Before anything is written: a model llama.cpp cannot load, or a port another program holds, took a working
    // service down (its restart failed, five times, with alerts) and install had nothing to roll back to.
    for (const file of config.model) await checkGivenModel(file, l, !!values["dry-run"]);
    if (l.root === "/") await refuseTakenPort(config, platformFlag(values)); // a dry run shows the refusal the install would meet
    const models = config.model.length || readManifest(l.modelsDir).length ? config.model : [await demoModel(out)];
    let r;
    try {
      r = await install({ layout: l, config, persist, binary, models, firewall: !!values.firewall, dryRun: !!values["dry-run"], out, run: realRunner });
    } finally {
      // The generated demo model was copied into the state dir (or only planned under --dry-run): its temp dir goes.
      if (!config.model.length && models[0]) fs.rmSync(path.dirname(models[0]), { recursive: true, force: true });
    }
    if (l.platform === "launchd" && !values.firewall) out(`egress lock (not applied; use --firewall to install it as pf anchor ${PF_ANCHOR}):\n${pfRules(l.account)}`);
    if (r.key) {
      out(`\nFirst API key (admin scope). It is shown once and stored only as a hash:\n${r.key}\n`);
      out("Give each client a key of its own with only the routes it calls: appliance keys create --name app --scopes chat,models\n");
    }
    if (!r.changed && !r.started) { out("nothing to change: the installation is up to date"); return EXIT.OK; }
    if (values["dry-run"]) { out("dry run: nothing was changed"); return EXIT.OK; }
    if (r.healthy === false) { console.error(`install failed: ${r.reason}`); return EXIT.FAIL; }
    out(r.healthy ? `installed and running: ${healthUrl(config)} answers` : `installed under ${l.root}`);
    const note = prebuiltEngineNote(config.engine, l.root);
    if (note) out(note);
    return EXIT.OK;
  },
};

export const uninstallCmd: Command = {
  name: "uninstall",
  summary: "Stop and remove the service and its built engine (keeps models, keys, logs, config and systemd drop-ins unless --purge)",
  usage: "appliance uninstall [--purge] [--root DIR] [--platform systemd|launchd] [--dry-run]",
  async run(argv) {
    const { values } = parseOwn(argv, { ...common, purge: { type: "boolean" } });
    const l = target(values, "uninstalling from");
    const dry = !!values["dry-run"];
    const selfPath = path.resolve(process.execPath); // read before the removal (Linux then appends " (deleted)")
    // Read before --purge removes the config: where `engine build` installed (the built engine goes with the binary).
    // An unreadable config must not stop an uninstall: then the default engine dir.
    let engineDir = path.join(l.root, DEFAULTS.engine.dir);
    try { engineDir = path.join(l.root, readInstance({ platform: platformFlag(values), root: l.root }).config.engine.dir); } catch (e) {
      out(`could not read the installed config (${(e as Error).message}): only the default engine dir ${engineDir} is checked`);
    }
    if (l.root === "/") runSteps(uninstallSteps(l, !!values.purge), realRunner, dry, out); // every step may fail (allowFail)
    for (const p of uninstallPaths(l, !!values.purge)) {
      if (!fs.existsSync(p)) continue;
      out(`${dry ? "would remove" : "remove"} ${p}`);
      if (!dry) fs.rmSync(p, { recursive: true, force: true });
    }
    const engines = removeBuiltEngines(engineDir, dry);
    for (const p of engines.removed) out(`${dry ? "would remove" : "remove"} ${p}`);
    for (const p of engines.left) out(`left ${p}: not provably a build of appliance engine build`);
    // /usr/local/lib/appliance held the native libraries and the default engine dir: removed once empty.
    const libDir = path.join(l.root, path.dirname(SYSTEM_NATIVE_DIR));
    if (fs.existsSync(libDir) && !fs.readdirSync(libDir).length) { out(`${dry ? "would remove" : "remove"} ${libDir}`); if (!dry) fs.rmdirSync(libDir); }
    if (l.root === "/" && l.platform === "systemd" && !dry) {
      realRunner(["systemctl", "daemon-reload"]);
      realRunner(["systemctl", "reset-failed", "appliance.service", "appliance-verify.service", "appliance-anchor.service"]); // no failed-unit record left
    }
    if (!values.purge) {
      // Only what is there: on a machine with nothing installed the line named directories and an account that never existed.
      const kept = ([[l.stateDir, " (models, keys, audit log)"], [l.logDir, ""], [l.configDir, ""], [l.anchorDir, " (the audit anchors)"]] as const)
        .filter(([p]) => fs.existsSync(p)).map(([p, what]) => p + what);
      if (readAccount(l.account, l.root)) kept.push(`the account ${l.account}`);
      // The installed binary ran this and just removed itself: `appliance uninstall --purge` then found no command.
      const gone = !dry && selfPath === path.resolve(l.bin)
        ? ` (run by the binary you installed from, e.g. ./appliance uninstall --purge: ${l.bin} was removed)` : "";
      out(kept.length ? `kept ${kept.join(", ")}; --purge removes them${gone}` : "nothing of an installation was found to keep");
    }
    return EXIT.OK;
  },
};

export const statusCmd: Command = {
  name: "status",
  summary: "Show whether the service is running and healthy",
  usage: "appliance status [--port N] [--platform systemd|launchd] [--state-dir DIR | --config FILE]",
  async run(argv) {
    const { values } = parseOwn(argv, { port: { type: "string" }, platform: { type: "string" }, "state-dir": { type: "string" }, config: { type: "string" } });
    // As lockdown, verify and incident: APPLIANCE_CONFIG / APPLIANCE_STATE_DIR / APPLIANCE_PORT name a server of one's own.
    const { inst, url, mtls } = instanceFor(values, process.env);
    // Nothing installed: no service to ask systemctl/launchctl about (their raw errors were printed); the health of a
    // server run by hand (a container, no installer) on the port is still reported.
    const state = !inst.installed ? "none (nothing installed; appliance install sets one up)"
      : inst.platform === "systemd" ? realRunner(["systemctl", "is-active", "appliance.service"]).out.trim()
      : realRunner(["launchctl", "print", "system/local.appliance.server"]).code === 0 ? "loaded" : "not loaded";
    const health = await waitHealthy(url, 1500, { mtls });
    // Lockdown answers 503 to all but /health: a healthy status alone would hide it.
    const lockdown = lockdownState(inst.config.stateDir);
    out(`installed: ${inst.installed ? "yes" : "no"}\nservice:   ${state || "unknown"}\nhealth:    ${health.ok ? `ok (${url}${health.note ? `; ${health.note}` : ""})` : health.reason}` +
      (lockdown ? `\nlockdown:  ON ${lockdown} (every route but /health and /metrics answers 503; appliance lockdown --off ends it)` : ""));
    return health.ok ? EXIT.OK : EXIT.FAIL;
  },
};

export const updateCmd: Command = {
  name: "update",
  summary: "Swap in a new binary (signature or checksum verified), restart, roll back automatically if unhealthy",
  usage: "appliance update --binary NEW (--signature SHA256SUMS.sig [--sums SHA256SUMS] [--pubkey KEY.pub] | --sha256 HEX) [--root DIR] [--platform systemd|launchd] [--port N]",
  async run(argv) {
    const { values } = parseOwn(argv, {
      root: { type: "string" }, platform: { type: "string" }, binary: { type: "string" }, sha256: { type: "string" }, port: { type: "string" },
      signature: { type: "string" }, sums: { type: "string" }, pubkey: { type: "string" },
    });
    const binary = values.binary as string | undefined;
    if (!binary) throw new UsageError("update needs --binary NEW");
    const sha256 = releaseDigest(values as Record<string, string | undefined>, binary);
    if (sha256 === undefined) return EXIT.FAIL;
    const { url, mtls } = instanceFor(values);
    return update({ layout: target(values, "updating"), binary, sha256, url, mtls, run: realRunner, out });
  },
};

export const rollbackCmd: Command = {
  name: "rollback",
  summary: "Go back to the binary that the last update replaced",
  usage: "appliance rollback [--root DIR] [--platform systemd|launchd] [--port N]",
  async run(argv) {
    const { values } = parseOwn(argv, { root: { type: "string" }, platform: { type: "string" }, port: { type: "string" } });
    const { url, mtls } = instanceFor(values);
    return rollback({ layout: target(values, "rolling back"), url, mtls, run: realRunner, out });
  },
};

/**
 * What `models add` checks before a model is served: its GGUF header, then a trial load in a child process, unless
 * these very bytes are the installed model of that name (tried when they were installed; a re-run changes nothing).
 */
async function checkGivenModel(file: string, l: Layout, dryRun: boolean) {
  const fd = fs.openSync(file, "r");
  let template: string | undefined;
  try { template = checkGgufHeader(file, fd).chatTemplate; } finally { fs.closeSync(fd); }
  if (dryRun) return;
  const installed = readManifest(l.modelsDir).find((e) => e.file === `${modelId(file)}.gguf`);
  if (installed && installed.sha256 === await sha256File(file)) return;
  // The trial run and serve's template trial, as models add runs them; the child unpacks the engine under the state
  // dir (/tmp is often noexec), in a temp dir of its own that is removed (never the service account's own native dir).
  await tryModel(file, file, l.stateDir, template);
}

/**
 * A port another program holds is refused before install writes anything: tried by binding it as serve will (its
 * host, no SO_REUSEPORT), so a listener on any address a wildcard bind covers counts, not only loopback's. The
 * installed service's own port (the same port, already installed) is skipped: that one is the service, restarted by install.
 */
async function refuseTakenPort(config: Pick<Config, "host" | "port">, platform: Platform) {
  const before = readInstance({ platform });
  if (before.installed && before.config.port === config.port) return;
  const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const trial = nodeNet().createServer();
    trial.once("error", (e: NodeJS.ErrnoException) => resolve(e));
    trial.listen({ host: config.host, port: config.port, exclusive: true }, () => trial.close(() => resolve(undefined)));
  });
  if (error?.code === "EADDRINUSE") throw new UsageError(`port ${config.port} on ${config.host} is in use by another program: choose another --port (nothing was changed)`);
}

/** "since T, reason R" while in lockdown; undefined otherwise. */
function lockdownState(stateDir: string): string | undefined {
  const r = readLockdown(stateDir);
  if (r === "unreadable") return "(its file is not the one lockdown writes)";
  return r && `since ${r.since ?? "?"}${r.reason ? `, reason: ${r.reason}` : ""}`;
}
