/**
 * The ONE reader of the installed instance: where it lives (layout), whether it
 * is installed, and the config it runs with (its port, state dir). install,
 * status, update, rollback and verify all ask here, so none of them guesses the
 * default port while the service listens on the installed one.
 */
import fs from "node:fs";
import path from "node:path";
import { ConfigError, loadConfig, ownState, parseConfig, readableInstalled, readConfigFile } from "../config/load";
import type { Config } from "../config/schema";
import { layout, type Layout, type Platform } from "./layout";

export interface Instance {
  platform: Platform;
  layout: Layout;
  /** The install recorded its binary digest (the mark of a completed install). */
  installed: boolean;
  /** The config file read (the installed one unless --config / APPLIANCE_CONFIG says otherwise). */
  configFile?: string;
  /** The effective config; under --root its stateDir/modelsDir are re-rooted. */
  config: Readonly<Config>;
  /** The settings written in the installed config file, as written (what install persisted). */
  persisted: Record<string, unknown>;
}

export interface InstanceOptions {
  platform: Platform;
  root?: string;
  /** --config FILE, if given. */
  file?: string;
  /** Flags already mapped to schema keys. */
  flags?: Record<string, unknown>;
  /** The environment whose APPLIANCE_* settings apply; default none: the service's unit sets no settings. */
  env?: Record<string, string | undefined>;
  /**
   * A command that acts on what is installed (verify, lockdown, incident): a --root with nothing installed under it
   * (a typo) is an error, not the caller's own default state dir, which `lockdown --root /typo` turned on instead.
   */
  requireInstalled?: boolean;
}

export function readInstance(o: InstanceOptions): Instance {
  const root = path.resolve(o.root ?? "/");
  const l = layout(o.platform, root);
  const installed = fs.existsSync(l.binDigest);
  const env = o.env ?? {};
  const own = ownState(o.flags ?? {}, env);
  const file = o.file ?? env.APPLIANCE_CONFIG ?? readableInstalled(l.configFile, !own);
  if (o.requireInstalled && o.root !== undefined && file === undefined && !own && !fs.existsSync(l.configFile)) {
    throw new ConfigError(`nothing is installed under --root ${root} (no ${l.configFile}); give --state-dir DIR or --config FILE for a server of your own`);
  }
  let config = loadConfig({ file, env, flags: o.flags ?? {} });
  if (root !== "/" && file === l.configFile) {
    config = parseConfig({ ...config, stateDir: path.join(root, config.stateDir), modelsDir: config.modelsDir ? path.join(root, config.modelsDir) : "" });
  }
  const persisted = fs.existsSync(l.configFile) ? readConfigFile(l.configFile) : {};
  return { platform: o.platform, layout: l, installed, configFile: file, config, persisted };
}

/**
 * The loopback URL of the installed server's /health (a public bind still answers on loopback unless bound elsewhere);
 * https with tlsCert, where the server speaks nothing else (service/health-probe.ts).
 */
export function healthUrl(config: Pick<Config, "host" | "port" | "tlsCert">): string {
  const host = config.host === "0.0.0.0" || config.host === "::" || config.host === "127.0.0.1" || config.host === "localhost" ? "127.0.0.1" : config.host;
  return `${config.tlsCert ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${config.port}/health`;
}
