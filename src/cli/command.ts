/** Commands are declarative records: a name, a one-line summary, usage, and a run() returning an exit code. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { AUTO_OR_NUMBER, DEFAULTS, FILE_ONLY, kebab, loadConfig, ConfigError, splitList } from "../config/load";
import type { Config } from "../config/schema";
import { detectPlatform, type Platform } from "../service/layout";
import { readInstance } from "../service/instance";
import { EXIT } from "./exit-codes";

export interface Command {
  name: string;
  summary: string;
  usage: string;
  hidden?: boolean;
  run(argv: string[]): Promise<number>;
}

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Flags for every top-level setting, derived from the schema's defaults: --ctx-size, --model (repeatable), --no-auth… */
export function configFlagOptions(): Options {
  const opts: Options = { config: { type: "string" } };
  for (const [key, def] of Object.entries(DEFAULTS)) {
    if (def && typeof def === "object" && !Array.isArray(def)) continue; // nested: config file or env
    if (FILE_ONLY.has(key)) continue; // a list of objects (upstreams): config file only
    const flag = kebab(key);
    if (typeof def === "boolean") {
      opts[flag] = { type: "boolean" };
      opts[`no-${flag}`] = { type: "boolean" };
    } else opts[flag] = Array.isArray(def) ? { type: "string", multiple: true } : { type: "string" };
  }
  return opts;
}

/** Parsed flag values → schema keys, typed like their defaults. */
export function flagsToConfig(values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(DEFAULTS)) {
    const flag = kebab(key);
    if (values[`no-${flag}`]) {
      // Both given: --no-auth won whatever the order, so `--no-auth` in an alias then `--auth` left auth off.
      if (values[flag]) throw new ConfigError(`invalid config: ${key}: --${flag} and --no-${flag} both given; give one`, key);
      out[key] = false;
      continue;
    }
    const v = values[flag];
    if (v === undefined) continue;
    if (typeof def === "number" || (AUTO_OR_NUMBER.has(key) && /^\d+$/.test(String(v)))) {
      const n = Number(v);
      if (String(v).trim() === "" || Number.isNaN(n)) throw new ConfigError(`invalid config: ${key}: --${flag} expects a number, got '${v}'`, key);
      out[key] = n;
    } else if (Array.isArray(def)) {
      // As in the environment: --cors-origins a,b is two origins, like --cors-origins a --cors-origins b.
      out[key] = (v as string[]).flatMap(splitList);
    } else out[key] = v;
  }
  return out;
}

/** Parses argv with the config flags plus a command's own, and loads the config. */
export function parseWithConfig(argv: string[], own: Options = {}, allowPositionals = false, once: readonly string[] = []) {
  const parsed = parseStrict(argv, { ...configFlagOptions(), ...own }, allowPositionals, once);
  const values = parsed.values as Record<string, unknown>;
  const config: Readonly<Config> = loadConfig({ file: values.config as string | undefined, flags: flagsToConfig(values) });
  return { config, values, positionals: parsed.positionals };
}

/** Parses a command's own flags only. */
export function parseOwn(argv: string[], own: Options, allowPositionals = false, once: readonly string[] = []) {
  return parseStrict(argv, own, allowPositionals, once);
}

/**
 * node:util parseArgs, strict. A setting given twice takes the last (an alias's default, then the override); a flag in
 * `once` (one naming what to act on) given twice is a usage error: `keys revoke --name a --name b` revoked b alone
 * and exited 0 (a fix-attack run).
 */
function parseStrict(argv: string[], options: Options, allowPositionals: boolean, once: readonly string[]) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals, strict: true, tokens: true });
  } catch (e) {
    throw new UsageError(argsMessage(e));
  }
  const seen = new Set<string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== "option" || !once.includes(t.name)) continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} given twice: it takes one value`);
    seen.add(t.name);
  }
  return parsed;
}

/**
 * node:util parseArgs' message without its advice on positionals after `--` ("Unknown option '--x'. To specify a
 * positional argument starting with a '-', place it at the end…"), which fits no command here: the usage line follows.
 */
function argsMessage(e: unknown): string {
  const m = (e as Error).message;
  return m.startsWith("Unknown option") ? m.replace(/\. To specify a positional argument[\s\S]*$/, "").replace(/^Unknown/, "unknown") : m;
}

/** A command with subcommands given none, or one it does not have: the message names the ones it has. */
export function unknownSubcommand(command: string, sub: string | undefined, known: readonly string[]): UsageError {
  return new UsageError(sub ? `unknown ${command} subcommand '${sub}' (known: ${known.join(", ")})`
    : `${command} needs a subcommand: ${known.join(", ")}`);
}

/**
 * The state dir a command acts on: --state-dir, else the one the config names (--config FILE, APPLIANCE_CONFIG, or the
 * installed config; the README offers "--config FILE or --state-dir DIR" to every command).
 */
export function stateDirFlag(values: Record<string, unknown>): string {
  const stateDir = values["state-dir"] as string | undefined;
  // A --config given beside --state-dir is still read: a file that cannot be is an error, as for every other command.
  if (stateDir !== undefined && values.config === undefined) return stateDir;
  return ownConfig(values).stateDir;
}

/** The config of a command that takes only --config FILE and --state-dir DIR of the settings' flags. */
export function ownConfig(values: Record<string, unknown>): Readonly<Config> {
  const stateDir = values["state-dir"] as string | undefined;
  return loadConfig({ file: values.config as string | undefined, ...(stateDir !== undefined && { flags: { stateDir } }) });
}

/**
 * The installed instance a command acts on (verify, lockdown, incident), as its flags and the environment name it:
 * --root (which must hold an install), --config, --state-dir and the other settings' flags.
 */
export function flaggedInstance(values: Record<string, unknown>) {
  return readInstance({ platform: platformFlag(values), root: values.root as string | undefined,
    file: values.config as string | undefined, flags: flagsToConfig(values), env: process.env, requireInstalled: true });
}

/** --platform systemd|launchd, or the one this machine runs. */
export function platformFlag(values: Record<string, unknown>): Platform {
  const platform = (values.platform as Platform | undefined) ?? detectPlatform();
  if (platform !== "systemd" && platform !== "launchd") throw new UsageError("--platform is systemd or launchd");
  return platform;
}

export { EXIT };
