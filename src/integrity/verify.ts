/**
 * `appliance verify`: the daily integrity check, also run before every service
 * start. Each check is small and returns ok / fail / unknown (could not tell,
 * e.g. needs root) / skip (does not apply here).
 */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/schema";
import { ADMIN_GROUPS, NO_LOGIN_SHELLS, readAccount } from "../service/accounts";
import type { Layout } from "../service/layout";
import { bindAllowed, isLoopback } from "../guards/host";
import { HashCache } from "./hash-cache";
import { MANIFEST, modelsDirOf, readManifest, sha256File } from "./manifest";
import { sha256Fd } from "../util/sha256";
import { checkNative } from "./native-check";
import { renderUnits } from "../service/units";
import { KeyStore } from "../guards/keys";
import { auditKeyPath, readAuditKey } from "../log/audit";
import { SYSTEM_NATIVE_DIR } from "../engine/native";
import { checkBuiltEngine } from "./engine-check";
import { checkEgress, otlpAllow } from "./egress";
import type { Check } from "./report";
import { sendDatagram } from "../util/unix-datagram";
import { readableByAll } from "../config/pem-files";
import { sudoersNaming } from "./sudoers";
import { dirsAbove } from "../util/fs";
import { unitEnvironment } from "./unit-environment";

export interface VerifyContext {
  config: Readonly<Config>;
  /** The installed layout, when the appliance is installed (or under install --root). */
  installed?: Layout;
  /** The service's environment (inside the service: process.env). */
  serviceEnv?: Record<string, string | undefined>;
  /** Leave the models to serve (the unit's pre-start check): serve hashes each one as it loads it, so once per start. */
  skipModels?: boolean;
  /**
   * The unit's pre-start check: what serve itself refuses with exit 2 (a keys file or TLS key it cannot use) is said,
   * not failed. Failed here, the pre-start failed, and RestartPreventExitStatus covers the main process only: the unit
   * was restarted until its start limit. Serve then refuses it, once.
   */
  preStart?: boolean;
}

/** The offline variables the unit sets (systemd/appliance.service) and the environment check requires. */
export const OFFLINE = { HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1", DO_NOT_TRACK: "1" };
const SECRETISH = /(KEY|TOKEN|SECRET|PASSW|CREDENTIAL)/i;
/** Names SECRETISH reads as secrets that are not: TOKENIZERS_PARALLELISM=false failed verify (attack on the fix). */
const HARMLESS = /TOKENIZER|KEYBOARD|KEYMAP/i;
const mode = (p: string) => fs.statSync(p).mode & 0o777;
const octal = (m: number) => "0" + m.toString(8);

/** `now`: the hash cache's wall clock (tests). */
export async function checkModels(config: Readonly<Pick<Config, "modelsDir" | "stateDir">>, now: () => number = Date.now): Promise<Check> {
  const dir = modelsDirOf(config);
  const entries = readManifest(dir);
  if (!entries.length) return { name: "models", status: "fail", detail: `no models in ${path.join(dir, MANIFEST)}` };
  const problems: string[] = [];
  // The daily check always reads every byte; run as root it also refreshes serve's hash cache (hash-cache.ts).
  const cache = HashCache.open(dir, { now });
  for (const e of entries) {
    const file = path.join(dir, e.file);
    if (!fs.existsSync(file)) { problems.push(`${file} is missing`); continue; }
    const fd = fs.openSync(file, "r");
    try {
      const before = fs.fstatSync(fd, { bigint: true });
      const actual = await sha256Fd(fd);
      cache.remember(file, before, fs.fstatSync(fd, { bigint: true }), actual);
      if (actual !== e.sha256) problems.push(`${file}: expected sha256 ${e.sha256}, actual ${actual}`);
    } finally { fs.closeSync(fd); }
  }
  cache.save();
  const listed = new Set(entries.map((e) => e.file));
  for (const f of fs.readdirSync(dir)) if (f.endsWith(".gguf") && !listed.has(f)) problems.push(`${path.join(dir, f)} is not in the manifest`);
  return problems.length ? { name: "models", status: "fail", detail: problems.join("; ") }
    : { name: "models", status: "ok", detail: `${entries.length} model(s) match ${path.join(dir, MANIFEST)}` };
}

export async function checkBinary(l: Layout): Promise<Check> {
  if (!fs.existsSync(l.binDigest)) return { name: "binary", status: "fail", detail: `no recorded digest at ${l.binDigest}` };
  const expected = fs.readFileSync(l.binDigest, "utf8").trim().split(/\s+/)[0]!;
  if (!fs.existsSync(l.bin)) return { name: "binary", status: "fail", detail: `${l.bin} is missing` };
  const actual = await sha256File(l.bin);
  if (actual !== expected) return { name: "binary", status: "fail", detail: `${l.bin}: expected sha256 ${expected}, actual ${actual}` };
  const held = [l.bin, l.binDigest].flatMap((f) => notRootHeld(f, l));
  return held.length ? { name: "binary", status: "fail", detail: `others than root could replace it and its recorded sha256 alike: ${held.join("; ")}` }
    : { name: "binary", status: "ok", detail: `${l.bin} matches the sha256 recorded at install` };
}

/**
 * Who besides root may replace `file`: it is not root's, or group or others may write it, or (on Linux) a dir above
 * it up to the install root is so. The binary and its recorded sha256 were checked only against each other, so whoever
 * could write both (a `chmod 0777`, a `chown` to the service account) replaced what root's timers run, and verify passed
 * (claims audit). macOS: the dirs above are not checked (Homebrew makes /usr/local/bin its user's on Intel Macs).
 */
function notRootHeld(file: string, l: Layout): string[] {
  const problems: string[] = [];
  const look = (p: string) => {
    const st = fs.statSync(p); // through a link: what it names is what runs
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) problems.push(`${p} (uid ${st.uid}, mode ${octal(st.mode & 0o777)})`);
  };
  look(file);
  if (l.platform !== "systemd") return problems;
  for (const d of dirsAbove(file, l.root)) look(d);
  return problems;
}

/** Whether an account may read (4) or enter (1) a path by its mode bits: as its owner, else one of its groups, else others. */
function allows(st: fs.Stats, a: { uid: number; gid: number; gids?: number[] }, bit: 4 | 1): boolean {
  const shift = st.uid === a.uid ? 6 : (a.gids ?? [a.gid]).includes(st.gid) ? 3 : 0;
  return ((st.mode >> shift) & bit) !== 0;
}

/**
 * Secret files: keys 0600/0400 owned by the service account (or this user when not installed); config 0640 at most.
 * leaveToServe (the pre-start check): problems serve refuses with exit 2 (the keys file, the TLS key) are warnings.
 */
export function checkFiles(config: Readonly<Config>, l?: Layout, leaveToServe = false): Check {
  const found: string[] = [];
  const unknown: string[] = [];
  /** Said, not failed: the pre-start check must not keep the service (and every other key) from starting over one key. */
  const warnings: string[] = [];
  const keys = path.join(config.stateDir, "keys.json");
  const owner = l ? readAccount(l.account, l.root) : undefined;
  const expectUid = l ? owner?.uid : process.getuid?.();
  // What serve refuses with exit 2 (KeyFileError, server/tls.ts): failed here, or said only (leaveToServe).
  const serveRefuses: string[] = [];
  const link = fs.lstatSync(keys, { throwIfNoEntry: false });
  if (link && !link.isFile()) serveRefuses.push(`${keys} is ${link.isSymbolicLink() ? "a symbolic link" : "not a plain file"} (the server refuses it)`);
  else if (link) {
    const m = mode(keys);
    if (m !== 0o600 && m !== 0o400) serveRefuses.push(`${keys} has mode ${octal(m)} (want 0600 or 0400)`);
    if (expectUid === undefined) unknown.push(`owner of ${keys} (account ${l?.account} unknown here)`);
    else if (fs.statSync(keys).uid !== expectUid) serveRefuses.push(`${keys} is owned by uid ${fs.statSync(keys).uid}, not ${l ? l.account : "this user"}`);
    // What the server reads: malformed, it refuses every key (a start that verify passed, then 401 for everyone).
    if (!serveRefuses.length) {
      try {
        // A key made when signatures were HMAC requires them but has no Ed25519 public key: every request is refused.
        const unsigned = new KeyStore(keys).list().filter((k) => k.requireSignature && !k.signingKey && !k.revoked).map((k) => k.name);
        if (unsigned.length) warnings.push(`key(s) ${unsigned.join(", ")} require signed requests but have no Ed25519 public key (made before signatures were Ed25519; every request with one is refused): keys rotate NAME --public-key FILE`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EACCES" || /EACCES|permission denied/i.test((e as Error).message)) unknown.push(`contents of ${keys} (not readable here)`);
        else serveRefuses.push(`${(e as Error).message} (the server refuses every key)`);
      }
    }
  }
  // audit.key: the server refuses to start with one group or others can read (log/audit.ts readAuditKey).
  const auditLog = path.join(config.stateDir, "audit.jsonl"), auditKey = auditKeyPath(auditLog);
  const ak = config.audit ? fs.lstatSync(auditKey, { throwIfNoEntry: false }) : undefined;
  if (ak && !ak.isFile()) found.push(`${auditKey} is ${ak.isSymbolicLink() ? "a symbolic link" : "not a plain file"} (the server refuses it)`);
  else if (ak && ak.mode & 0o077) found.push(`${auditKey} has mode ${octal(ak.mode & 0o777)} (the server refuses to start: want 0600)`);
  else if (ak && expectUid !== undefined && ak.uid !== expectUid) found.push(`${auditKey} is owned by uid ${ak.uid}, not ${l ? l.account : "this user"} (the server cannot read it)`);
  else if (ak) {
    try { readAuditKey(auditLog); } catch (e) {
      if (/EACCES|EPERM/.test((e as Error).message)) unknown.push(`contents of ${auditKey} (not readable here)`);
      else found.push(`${(e as Error).message} (the server refuses to start)`);
    }
  }
  if (l && fs.existsSync(l.configFile)) {
    const m = mode(l.configFile);
    if (m & 0o027) found.push(`${l.configFile} has mode ${octal(m)} (want 0640 at most)`);
    const st = fs.statSync(l.configFile);
    if (st.uid !== 0 && process.getuid?.() === 0) found.push(`${l.configFile} is not owned by root`);
    // The service reads it at every start: unreadable, the start fails (exit 2) while verify said all was well.
    const dir = fs.statSync(path.dirname(l.configFile));
    if (owner && !allows(dir, owner, 1)) found.push(`${path.dirname(l.configFile)} cannot be entered by ${l.account} (the service reads the config in it): chgrp ${l.account} and chmod 0750`);
    else if (owner && !allows(st, owner, 4)) found.push(`${l.configFile} is not readable by ${l.account} (the service reads it): chgrp ${l.account} and chmod 0640`);
  }
  // TLS private keys (the listener's, an upstream's client key): serve refuses one every user may read
  // (config/pem-files.ts), so verify fails it too.
  const tlsKeys: [string, string][] = [[config.tlsKey, "tlsKey"], ...config.upstreams.map((u): [string, string] => [u.tlsKey, "upstreams tlsKey"])];
  for (const [file, field] of tlsKeys.filter(([f]) => f)) {
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (st && readableByAll(st.mode)) serveRefuses.push(`${file} (${field}) is readable by every user: mode ${octal(st.mode & 0o777)} (the server refuses to start: chmod o-r)`);
  }
  if (leaveToServe) warnings.push(...serveRefuses.map((p) => `${p} (left to serve, which refuses to start: exit 2, not restarted)`));
  const problems = leaveToServe ? found : [...serveRefuses, ...found];
  if (problems.length) return { name: "files", status: "fail", detail: problems.join("; ") };
  if (warnings.length) return { name: "files", status: "unknown", detail: `WARNING: ${warnings.join("; ")}` };
  if (unknown.length) return { name: "files", status: "unknown", detail: `modes ok; cannot check ${unknown.join(", ")}` };
  return { name: "files", status: "ok", detail: "keys file, audit key and config files have safe modes and owners; the keys file parses" };
}

export function checkDirs(config: Readonly<Config>, l?: Layout): Check {
  const models = modelsDirOf(config);
  // The models' files and their manifest too: with both writable by others, any local user could rewrite a model and
  // its digest alike, and verify said "all checks passed" (ops run).
  const listed = () => { try { return readManifest(models).map((e) => path.join(models, e.file)); } catch { return []; } }; // unreadable: the models check says so
  const modelFiles = fs.existsSync(path.join(models, MANIFEST)) ? [path.join(models, MANIFEST), ...listed()] : [];
  const dirs = [config.stateDir, models, ...(l ? [l.logDir, l.configDir] : []), ...modelFiles];
  const bad = dirs.filter((d) => fs.existsSync(d) && mode(d) & 0o022).map((d) => `${d} (${octal(mode(d))})`);
  // Installed, the models dir and the anchors' dir are root's (install makes them so). The models dir sits in the
  // service account's state dir, so the account could move it aside and put a dir of its own there, with a changed
  // model and a manifest to match, and verify passed; the anchors' dir made the account's let it rewrite the anchors
  // (claims audit).
  const rootDirs = l ? [...(path.resolve(models) === path.resolve(l.modelsDir) ? [models] : []), l.anchorDir] : [];
  const notRoots = rootDirs.map((d) => [d, fs.statSync(d, { throwIfNoEntry: false })?.uid] as const).filter(([, uid]) => uid !== undefined && uid !== 0)
    .map(([d, uid]) => `${d} (uid ${uid})`);
  const problems = [...(bad.length ? [`writable by group or others: ${bad.join(", ")}`] : []),
    ...(notRoots.length ? [`not root's, as install made them: ${notRoots.join(", ")}`] : [])];
  if (l && fs.existsSync(l.anchorDir) && mode(l.anchorDir) & 0o077) problems.push(`${l.anchorDir} is not root-only (${octal(mode(l.anchorDir))}, want 0700)`);
  return problems.length ? { name: "directories", status: "fail", detail: problems.join("; ") }
    : { name: "directories", status: "ok", detail: `state, models (their files and manifest too), logs and config are not writable by others${l ? "; the models and anchor dirs are root's" : ""}` };
}

export function checkAccount(l: Layout): Check {
  const a = readAccount(l.account, l.root);
  if (a === null) return { name: "account", status: "unknown", detail: `cannot read ${path.join(l.root, "etc/passwd")}` };
  if (!a) return { name: "account", status: "fail", detail: `service account ${l.account} does not exist` };
  const problems: string[] = [];
  if (!NO_LOGIN_SHELLS.includes(a.shell)) problems.push(`login shell ${a.shell || "(none set)"}`);
  const admin = a.groups.filter((g) => ADMIN_GROUPS.includes(g));
  if (admin.length) problems.push(`member of ${admin.join(", ")}`);
  const granted = sudoersNaming(l.root, a);
  if (granted.length) problems.push(`named in sudoers: ${granted.join("; ")}`);
  if (a.uid === 0) problems.push("uid 0");
  return problems.length ? { name: "account", status: "fail", detail: `${l.account}: ${problems.join("; ")}` }
    : { name: "account", status: "ok", detail: `${l.account} has no login shell and no admin group` };
}

export function checkListen(config: Readonly<Config>): Check {
  if (isLoopback(config.host)) return { name: "listen", status: "ok", detail: `${config.host}:${config.port} (loopback)` };
  return bindAllowed(config)
    ? { name: "listen", status: "ok", detail: `${config.host} (public bind explicitly allowed, auth on)` }
    : { name: "listen", status: "fail", detail: `${config.host} is not loopback and public bind is not allowed` };
}

/** The service's environment: inside the service, process.env; otherwise what the unit/plist sets. */
export function serviceEnvironment(l: Layout): Record<string, string> | undefined {
  const env: Record<string, string> = {};
  const unit = Object.values(l.units)[0]!;
  if (!fs.existsSync(unit)) return undefined;
  const text = fs.readFileSync(unit, "utf8");
  if (l.platform === "systemd") {
    Object.assign(env, unitEnvironment(l.root, unit, text));
  } else {
    const block = /<key>EnvironmentVariables<\/key>\s*<dict>([\s\S]*?)<\/dict>/.exec(text)?.[1] ?? "";
    for (const m of block.matchAll(/<key>([^<]+)<\/key>\s*<string>([^<]*)<\/string>/g)) env[m[1]!] = m[2]!;
  }
  return env;
}

export function checkEnvironment(env: Record<string, string | undefined> | undefined): Check {
  if (!env) return { name: "environment", status: "unknown", detail: "service unit not found" };
  const problems: string[] = [];
  for (const [k, v] of Object.entries(OFFLINE)) if (env[k] !== v) problems.push(`${k} is not ${v}`);
  const secrets = Object.keys(env).filter((k) => SECRETISH.test(k) && !HARMLESS.test(k) && env[k]);
  if (secrets.length) problems.push(`secret-looking variables set: ${secrets.join(", ")}`);
  return problems.length ? { name: "environment", status: "fail", detail: problems.join("; ") }
    : { name: "environment", status: "ok", detail: "offline variables set, no secrets in the environment" };
}

/**
 * A unit without what install sizes by the machine and models then: the start timeout (a model added since moves it),
 * MemoryMax and CPUQuota "auto" (the RAM and CPUs seen, which a resized VM or a verify under taskset sees otherwise),
 * and the huge-page tunable (THP on, and on a machine that reports freed memory to a hypervisor a measurement: util/huge-pages.ts).
 */
const sansSized = (unit: string) => unit.replace(/^(TimeoutStartSec|MemoryMax|CPUQuota)=.*$/gm, "$1=")
  // Only the tunable's value and the figures install measured: anything else added to that line is a change.
  .replace(/^Environment=GLIBC_TUNABLES=glibc\.malloc\.hugetlb=[01](?: APPLIANCE_PAGE_PROBE=huge=\d+(?:\.\d+)?,small=\d+(?:\.\d+)?)?$/gm, "Environment=GLIBC_TUNABLES=");

/**
 * The installed units against what this binary installs. `appliance update` swaps the binary and restarts; the units
 * stay as the release that installed them wrote them (upgrade run: a start limit, a pre-start check and ExecPaths
 * fixed since never reached an updated machine, and nothing said so). A warning, not a failure: the pre-start check
 * must not keep an updated service from starting over it. Re-running install rewrites them and keeps the rest.
 */
export function checkUnits(l: Layout, config: Readonly<Config>): Check {
  const dir = modelsDirOf(config);
  const bytes = readManifest(dir).reduce((n, e) => n + (fs.statSync(path.join(dir, e.file), { throwIfNoEntry: false })?.size ?? 0), 0);
  const stale: string[] = [], unread: string[] = [];
  for (const [file, want] of Object.entries(renderUnits(l, config, bytes))) {
    let have: string;
    // Not there, or not readable here (the service's own pre-start check under its AppArmor profile): not checked
    try { have = fs.readFileSync(file, "utf8"); } catch { unread.push(file); continue; }
    if (sansSized(have) !== sansSized(want)) stale.push(file);
  }
  if (stale.length) return { name: "units", status: "unknown", detail: `WARNING: ${stale.join(", ")} differ from what this binary installs (appliance update swaps the binary, not the units): run sudo appliance install to rewrite them (config, keys, models and port are kept)` };
  if (unread.length) return { name: "units", status: "unknown", detail: `cannot read ${unread.join(", ")} here` };
  return { name: "units", status: "ok", detail: "the service's units are the ones this binary installs" };
}

export async function runVerify(ctx: VerifyContext): Promise<Check[]> {
  const { config, installed: l } = ctx;
  const safe = async (name: string, f: () => Check | Promise<Check>): Promise<Check> => {
    try { return await f(); } catch (e) { return { name, status: "fail", detail: (e as Error).message }; }
  };
  const notInstalled = (name: string): Check => ({ name, status: "skip", detail: "not installed as a service" });
  // Under --root the install's fixed paths are re-rooted as the layout's are (readInstance re-roots the state and models
  // dirs): the native libraries and the built engine were looked for on this machine's own /usr/local/lib.
  const root = l?.root ?? "/";
  const engineConfig = root === "/" ? config : { ...config, engine: { ...config.engine, dir: path.join(root, config.engine.dir) } };
  return [
    ctx.skipModels ? { name: "models", status: "skip", detail: "checked by serve as it loads them (each model hashed once per start)" }
      : await safe("models", () => checkModels(config)),
    l ? await safe("binary", () => checkBinary(l)) : notInstalled("binary"),
    await safe("files", () => checkFiles(config, l, !!ctx.preStart)),
    await safe("directories", () => checkDirs(config, l)),
    l ? await safe("account", () => checkAccount(l)) : notInstalled("account"),
    await safe("native", () => checkNative(config, undefined, path.join(root, SYSTEM_NATIVE_DIR), root)),
    // Before each start (skipModels) the built engine's unchanged files come from the root-written hash cache, as
    // at the start itself (a CUDA engine is hundreds of MB); the daily run reads every byte.
    await safe("engine", () => checkBuiltEngine(engineConfig, undefined, !!ctx.skipModels)),
    await safe("listen", () => checkListen(config)),
    l ? await safe("environment", () => checkEnvironment(ctx.serviceEnv ?? serviceEnvironment(l))) : notInstalled("environment"),
    l ? await safe("units", () => checkUnits(l, config)) : notInstalled("units"),
    ...(l?.platform === "systemd" ? [await safe("egress", () => checkEgress(!!ctx.serviceEnv, config.allowPublicBind && !isLoopback(config.host), config.egressLock, undefined, otlpAllow(config)))] : []),
  ];
}

/**
 * local0.alert to syslog. Linux: straight to /dev/log from this process (the service may execute nothing but
 * its own binary, so no `logger`); elsewhere, or if that fails, `logger`.
 */
function syslogAlert(msg: string) {
  if (sendDatagram("/dev/log", `<${16 * 8 + 1}>appliance[${process.pid}]: ${msg}`)) return;
  try { Bun.spawnSync(["logger", "-p", "local0.alert", "-t", "appliance", msg], { stdout: "ignore", stderr: "ignore" }); } catch { /* no logger */ }
}

/** Failure alert: syslog (local0.alert, Linux and macOS alike) and a line in the log dir. */
export function alert(checks: Check[], logDir: string | undefined, now = new Date()) {
  const failed = checks.filter((c) => c.status === "fail");
  if (!failed.length) return;
  const msg = `verify failed: ${failed.map((c) => `${c.name}: ${c.detail}`).join(" | ")}`.slice(0, 900);
  syslogAlert(msg);
  if (logDir) {
    try {
      fs.mkdirSync(logDir, { recursive: true, mode: 0o750 });
      fs.appendFileSync(path.join(logDir, "verify-alerts.log"), JSON.stringify({ ts: now.toISOString(), failed }) + "\n", { mode: 0o640 });
    } catch { /* the syslog line is the alert of record */ }
  }
}
