/**
 * Builds the one frozen Config: defaults < config file < APPLIANCE_* env < flags.
 * Every failure is a ConfigError naming the field, which the CLI turns into exit 2.
 */
import fs from "node:fs";
import path from "node:path";
import type * as z from "zod/mini";
import { configSchema, defaultStateDir, withoutDefault, type Config } from "./schema";
import { jsonErrorAt } from "./json-error-at";

export class ConfigError extends Error {
  constructor(message: string, readonly field?: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Raw = Record<string, unknown>;

// jitless: zod's compiled fast path pays for generating its parser (~8 ms of every start, scripts/bench-cold.ts) on a
// schema parsed a couple of times per process; the plain path gives the same result.
const ONCE = { jitless: true } as const;

/** Defaults only: handy for tests and for `config print --defaults`. */
export const DEFAULTS: Readonly<Config> = Object.freeze(configSchema.parse({}, ONCE));

export const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());

/** Reads a JSON or TOML config file (by extension, any case; JSON otherwise). */
export function readConfigFile(file: string): Raw {
  let text: string;
  let fd: number | undefined;
  try {
    // Opened without blocking and read only when a regular file: a FIFO put at the path hung the reader (every SIGHUP's
    // config report stalled the server until something wrote to it; attack on the fix).
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    if (!fs.fstatSync(fd).isFile()) throw new ConfigError(`config file ${file} is not a regular file`, "config");
    // A byte-order mark (some editors save one) is not JSON: refused as "line 1, column 1" with nothing to see there.
    text = fs.readFileSync(fd, "utf8").replace(/^\uFEFF/, "");
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`, "config");
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  const toml = /\.toml$/i.test(file);
  let parsed: unknown;
  try {
    parsed = toml ? Bun.TOML.parse(text) : JSON.parse(text);
  } catch (e) {
    // Where: Bun's JSON error says nothing of it (json-error-at.ts finds it). Its TOML error's line/column fields do not
    // point into the file (measured: line 40 of a 2-line file), so a TOML error goes without.
    const at = toml ? undefined : jsonErrorAt(text);
    const kind = /\.ya?ml$/i.test(file) ? " (config files are JSON, or TOML when named .toml; YAML is not read)" : "";
    throw new ConfigError(`config file ${file} is not valid ${toml ? "TOML" : "JSON"}${at ? ` at ${at}` : ""}${kind}: ${(e as Error).message}`, "config");
  }
  // Valid JSON of another kind (`[]`, a number) is not "not valid JSON" (ops run).
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${file} holds ${Array.isArray(parsed) ? "a list" : parsed === null ? "null" : `a ${typeof parsed}`}, not an object of settings`, "config");
  }
  return parsed as Raw;
}

/** A list setting written as text (a variable, a flag): comma-separated, spaces around items dropped; "" is the empty list. */
export const splitList = (value: string): string[] => (value === "" ? [] : value.split(",").map((s) => s.trim()));

/** Coerces an env string towards the type of the default it overrides. */
function coerceEnv(value: string, like: unknown, key: string): unknown {
  if (Array.isArray(like)) return splitList(value);
  if (typeof like === "number") return value.trim() === "" ? NaN : Number(value);
  if (typeof like === "boolean") return /^(1|true|yes|on)$/i.test(value) ? true : /^(0|false|no|off)$/i.test(value) ? false : value;
  if (AUTO_OR_NUMBER.has(key) && /^\d+$/.test(value)) return Number(value);
  return value;
}

/**
 * Control variables: documented APPLIANCE_* names that steer the CLI, the units or the tests and
 * are never settings (APPLIANCE_KEY is the API key the README's examples export).
 */
export const RESERVED_ENV: Readonly<Record<string, string>> = Object.freeze({
  APPLIANCE_CONFIG: "config file to read",
  APPLIANCE_KEY: "the API key clients send (README examples); never read by the server",
  APPLIANCE_DEBUG: "print the full error on a CLI failure",
  APPLIANCE_SERVICE: "set by the systemd unit / launchd plist: verify checks its own environment",
  APPLIANCE_BINARY: "tests: run this binary instead of building one",
  APPLIANCE_REEXEC: "set by serve when it re-executes itself with huge-page malloc (util/huge-pages.ts); never a second time",
  APPLIANCE_PAGE_PROBE: "set by serve's start or the unit: what the huge-page decision measured (util/fault-probe.ts); serve logs it",
  APPLIANCE_PREFLIGHT_ENGINE: "set by serve for its GPU preflight child only: the engine.dir of the built engine it verified (engine/engine-select.ts)",
});

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase();

/** A schema's kind (zod's def.type: "object", "array", "union", "number" …). */
const kind = (s: z.ZodMiniType) => s._zod.def.type;
const isObjectList = (s: z.ZodMiniType) => {
  const inner = withoutDefault(s);
  return kind(inner) === "array" && kind((inner._zod.def as z.core.$ZodArrayDef).element as z.ZodMiniType) === "object";
};

/**
 * Settings that are a list of objects (upstreams, promptGuard.rules): only a config file can write them. They get no
 * flag, and their environment variable is an error saying so (a comma list of strings cannot be objects).
 */
export const FILE_ONLY: ReadonlySet<string> = new Set(Object.entries(configSchema.shape).flatMap(([k, s]): string[] => {
  const inner = withoutDefault(s);
  if (kind(inner) === "object") return Object.entries((inner as z.ZodMiniObject).shape).filter(([, ss]) => isObjectList(ss as z.ZodMiniType)).map(([kk]) => `${k}.${kk}`);
  return isObjectList(s) ? [k] : [];
}));

/**
 * Settings whose default is "auto" and that otherwise take a number (gpuLayers): "12" from a flag or variable is the
 * number. Not memoryMax/cpuQuota, also "auto" by default but strings ("1024", bytes as systemd reads them, was
 * refused as "expected string, received number").
 */
export const AUTO_OR_NUMBER: ReadonlySet<string> = new Set(Object.entries(configSchema.shape).filter(([k, s]) => {
  const inner = withoutDefault(s);
  return (DEFAULTS as Raw)[k] === "auto" && kind(inner) === "union" &&
    ((inner._zod.def as z.core.$ZodUnionDef).options as z.ZodMiniType[]).some((o) => kind(o) === "number");
}).map(([k]) => k));

/** Every settings variable the schema defines: APPLIANCE_PORT → ["port"], APPLIANCE_RATE_LIMIT__RPM → ["rateLimit","rpm"]. */
export const SETTINGS_ENV: ReadonlyMap<string, readonly string[]> = new Map(Object.entries(DEFAULTS).flatMap(([k, v]): [string, string[]][] =>
  v && typeof v === "object" && !Array.isArray(v)
    ? Object.keys(v).map((sub) => [`APPLIANCE_${snake(k)}__${snake(sub)}`, [k, sub]])
    : [[`APPLIANCE_${snake(k)}`, [k]]]));

const warned = new Set<string>();
const warnOnce = (name: string) => {
  if (warned.has(name)) return;
  warned.add(name);
  console.error(`appliance: warning: ignoring unknown environment variable ${name} (not a setting; see the README's configuration table)`);
};

/**
 * APPLIANCE_PORT=8080, APPLIANCE_RATE_LIMIT__RPM=60 (double underscore = nesting). Only names the
 * schema defines are settings; control variables are skipped and any other APPLIANCE_* name is a
 * one-line warning, never fatal (a stray export in the shell must not stop the service).
 */
export function envLayer(env: Record<string, string | undefined>, warn: (name: string) => void = warnOnce): Raw {
  const out: Raw = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("APPLIANCE_") || value === undefined || name in RESERVED_ENV) continue;
    const keys = SETTINGS_ENV.get(name);
    if (!keys) { warn(name); continue; }
    if (FILE_ONLY.has(keys.join("."))) {
      throw new ConfigError(`invalid config: ${keys.join(".")}: a list of objects, set in the config file only (not with ${name})`, keys.join("."));
    }
    let target = out, like: unknown = DEFAULTS;
    for (const k of keys.slice(0, -1)) {
      like = (like as Raw | undefined)?.[k];
      target = (target[k] ??= {}) as Raw;
    }
    const last = keys.at(-1)!;
    const v = coerceEnv(value, (like as Raw | undefined)?.[last], keys.join("."));
    if (typeof (like as Raw | undefined)?.[last] === "boolean" && typeof v !== "boolean") {
      throw new ConfigError(`invalid config: ${keys.join(".")}: ${name} expects true or false (also 1/0, yes/no, on/off), got '${value}'`, keys.join("."));
    }
    // As the flags do (command.ts flagsToConfig): the schema's own message ("expected number, received NaN") named
    // neither the variable nor what it was set to.
    if (typeof v === "number" && Number.isNaN(v)) throw new ConfigError(`invalid config: ${keys.join(".")}: ${name} expects a number, got '${value}'`, keys.join("."));
    target[last] = v;
  }
  return out;
}

function merge(base: Raw, over: Raw): Raw {
  const out: Raw = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] = v && typeof v === "object" && !Array.isArray(v) && b && typeof b === "object" && !Array.isArray(b)
      ? merge(b as Raw, v as Raw) : v;
  }
  return out;
}

function describeIssue(issue: z.core.$ZodIssue): ConfigError {
  const field = issue.path.join(".") || "(root)";
  return new ConfigError(`invalid config: ${field}: ${issue.message}`, field);
}

/** Validates a raw object against the schema, throwing a ConfigError that names the first bad field. */
export function parseConfig(raw: Raw): Readonly<Config> {
  const result = configSchema.safeParse(raw, ONCE);
  if (!result.success) throw describeIssue(result.error.issues[0]!);
  return Object.freeze(result.data);
}

export interface LoadOptions {
  /** Config file path (from --config or APPLIANCE_CONFIG). */
  file?: string;
  env?: Record<string, string | undefined>;
  /** Flags already mapped to schema keys. */
  flags?: Raw;
}

/**
 * Where `appliance install` puts the service's config file, per OS (service/layout.ts uses these),
 * so CLI commands on an installed machine act on that instance.
 */
export const INSTALLED_CONFIG = { systemd: "/etc/appliance/config.json", launchd: "/usr/local/etc/appliance/config.json" } as const;

/**
 * The flags a printed hint needs so that the command, run as printed, acts on this config's dirs: " --state-dir DIR"
 * unless it is the default one (under systemd that is the unit's StateDirectory), and with `models` " --models-dir DIR"
 * unless models live in <stateDir>/models. A server started with --state-dir S said "add it with: appliance models add
 * X", which then added X to the default state dir.
 */
export function dirFlags(config: Pick<Config, "stateDir" | "modelsDir">, models = false): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  const state = path.resolve(config.stateDir);
  let out = state === path.resolve(defaultStateDir()) ? "" : ` --state-dir ${quote(state)}`;
  if (models && config.modelsDir && path.resolve(config.modelsDir) !== path.join(state, "models")) out += ` --models-dir ${quote(path.resolve(config.modelsDir))}`;
  return out;
}

/** A state or models dir of the caller's own (flag or variable): the installed service's config is not needed. */
export const ownState = (flags: Record<string, unknown>, env: Record<string, string | undefined>) =>
  flags.stateDir !== undefined || flags.modelsDir !== undefined || !!env.APPLIANCE_STATE_DIR || !!env.APPLIANCE_MODELS_DIR;

function installedConfig(ownStateDir: boolean): string | undefined {
  const file = process.platform === "darwin" ? INSTALLED_CONFIG.launchd : INSTALLED_CONFIG.systemd;
  // A user's own server (its own --state-dir) needs nothing of the service's config.
  return readableInstalled(file, !ownStateDir);
}

/**
 * The installed config file when this user can read it; undefined when there is none. Unreadable (its directory is
 * root:appliance 0750): without `strict` undefined, else a ConfigError: a forgotten sudo on an installed machine
 * had `keys create`, `keys revoke --all` and `lockdown` report success on a state dir of the user's own, which the
 * service never reads, and `status` say "installed: no".
 */
export function readableInstalled(file: string, strict = false): string | undefined {
  try { fs.accessSync(file, fs.constants.R_OK); return file; } catch (e) {
    if (strict && (e as NodeJS.ErrnoException).code === "EACCES") {
      throw new ConfigError(`${file}: permission denied. appliance is installed here, and its config, keys and state are the service's: run this as root (sudo appliance …), or give --config FILE or --state-dir DIR for a server of your own`);
    }
    return undefined;
  }
}

export function loadConfig(opts: LoadOptions = {}): Readonly<Config> {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.APPLIANCE_CONFIG ?? (opts.env ? undefined : installedConfig(ownState(opts.flags ?? {}, env)));
  let raw: Raw = {};
  if (file) raw = merge(raw, readConfigFile(file));
  raw = merge(raw, envLayer(env));
  raw = merge(raw, opts.flags ?? {});
  return parseConfig(raw);
}

/**
 * A field whose value is itself a secret (upstreams[].apiKey; any future *Secret, *Password, *Token). Matched on the
 * name's end: the settings that only point at a secret (redisPasswordFile, apiKeyEnv, tlsKey: a path) or merely
 * mention one (promptGuard.specialTokens, gateway.tokenPrompts) are shown as they are, or `config print` hides them.
 */
const SECRET_KEY = /(secret|password|token|apikey)$/i;

/**
 * A URL's credentials, whatever the field is called: a password (rateLimit.redisUrl = redis://:pw@host), a user part
 * alone (https://TOKEN@host), and every query value (an upstream's ?api_key=…; its log name drops the query too).
 */
export function redactUrl(v: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#\s]*)(.*)$/is.exec(v);
  if (!m) return v;
  let [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  const at = authority.lastIndexOf("@");
  if (at >= 0) {
    const user = authority.slice(0, at), colon = user.indexOf(":");
    authority = `${colon >= 0 ? `${user.slice(0, colon)}:[redacted]` : "[redacted]"}${authority.slice(at)}`;
  }
  // Every query item's value (a bare item is all value: ?TOKEN) and any fragment.
  const hash = rest.indexOf("#");
  const before = hash >= 0 ? rest.slice(0, hash) : rest, q = before.indexOf("?");
  const items = q >= 0 ? before.slice(q + 1).split("&").map((item) => (item === "" ? "" : item.includes("=") ? `${item.slice(0, item.indexOf("="))}=[redacted]` : "[redacted]")) : undefined;
  const fragment = hash >= 0 ? `#${hash + 1 < rest.length ? "[redacted]" : ""}` : "";
  return scheme + authority + (q >= 0 ? before.slice(0, q) : before) + (items ? `?${items.join("&")}` : "") + fragment;
}

/** The effective config with every secret value masked, for `config print` and incident snapshots. */
export function redactConfig(config: Config): Raw {
  const walk = (v: unknown, k = ""): unknown => {
    // An empty secret is shown empty: "[redacted]" read as if one were set.
    if (SECRET_KEY.test(k) && typeof v === "string") return v === "" ? "" : "[redacted]";
    if (typeof v === "string") return redactUrl(v);
    if (Array.isArray(v)) return v.map((x) => walk(x, k));
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([kk, vv]) => [kk, walk(vv, kk)]));
    return v;
  };
  return walk(config) as Raw;
}
