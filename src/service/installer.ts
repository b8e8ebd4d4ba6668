/**
 * `appliance install` as a plan of small steps, then an apply that changes only
 * what differs (so a second run changes nothing and says so). --dry-run prints
 * every step and file; --root DIR writes under DIR and skips the account and
 * the service manager, so tests and packagers can inspect the result.
 */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/schema";
import { KeyStore, keysFilePath } from "../guards/keys";
import { MANIFEST, readManifest, sha256File } from "../integrity/manifest";
import { modelId } from "../integrity/resolve";
import { NATIVE_BUNDLE } from "../engine/native-assets";
import { checkNativeDir, checkRootOwned, installNative, SYSTEM_NATIVE_DIR } from "../engine/native";
import { writeFileAtomic } from "../util/atomic-write";
import { copyHashed } from "../util/fs";
import { readAccount } from "./accounts";
import { waitHealthy } from "./health-probe";
import { healthUrl } from "./instance";
import { systemView, type Layout } from "./layout";
import { ensureAccount, runSteps, serviceRunning, serviceSteps, type Runner } from "./platform";
import { keptPageChoice, renderUnits } from "./units";
import { hugePageChoice } from "../util/huge-pages";

export type Owner = "root" | "svc" | "root:svc";
export type Step =
  | { kind: "dir"; path: string; mode: number; owner: Owner }
  | { kind: "file"; path: string; content: string | Uint8Array; mode: number; owner: Owner; show?: boolean }
  | { kind: "copy"; from: string; path: string; sha256: string; mode: number; owner: Owner }
  | { kind: "touch"; path: string; mode: number; owner: Owner }
  /** The embedded llama.cpp libraries, root-owned and read-only (installNative): the service cannot write what it maps executable. */
  | { kind: "native"; path: string; mode: number; owner: Owner }
  | { kind: "first-key" };

export interface InstallOptions {
  layout: Layout;
  /** The config the service will run with. */
  config: Readonly<Config>;
  /** The settings written to the installed config file (every config flag given, and the layout's state dir). */
  persist: Record<string, unknown>;
  binary: string;
  models: string[];
  firewall: boolean;
  dryRun: boolean;
  out: (line: string) => void;
  run: Runner;
}

const octal = (m: number) => "0" + m.toString(8);

export async function planInstall(o: InstallOptions): Promise<Step[]> {
  const l = o.layout, sys = systemView(l);
  const binSha = await sha256File(o.binary);
  const steps: Step[] = [
    { kind: "dir", path: l.configDir, mode: 0o750, owner: "root:svc" },
    { kind: "dir", path: l.stateDir, mode: 0o750, owner: "svc" },
    // Models, their manifest and the hash cache are root's (the service reads them through its group): only then
    // may serve trust the hash cache across starts (integrity/hash-cache.ts).
    { kind: "dir", path: l.modelsDir, mode: 0o750, owner: "root:svc" },
    { kind: "dir", path: l.logDir, mode: 0o750, owner: "svc" },
    // The root-held audit anchors (anchor job every 5 minutes): a directory the service account can neither write nor list.
    { kind: "dir", path: l.anchorDir, mode: 0o700, owner: "root" },
    { kind: "dir", path: path.dirname(l.bin), mode: 0o755, owner: "root" },
    // Before the first start: the unit's ExecPaths= names it, and serve loads from it instead of the state dir.
    { kind: "native", path: path.join(l.root, SYSTEM_NATIVE_DIR), mode: 0o755, owner: "root" },
    { kind: "copy", from: o.binary, path: l.bin, sha256: binSha, mode: 0o755, owner: "root" },
    { kind: "file", path: l.binDigest, content: `${binSha}  ${sys.bin}\n`, mode: 0o644, owner: "root", show: true },
    { kind: "file", path: l.configFile, content: JSON.stringify(o.persist, null, 2) + "\n", mode: 0o640, owner: "root:svc", show: true },
  ];
  // Models: copied in with their digests, and the manifest that lists them.
  const entries = new Map(readManifest(l.modelsDir).map((e) => [e.file, e.sha256]));
  const sizes = new Map([...entries.keys()].map((f) => [f, fs.statSync(path.join(l.modelsDir, f), { throwIfNoEntry: false })?.size ?? 0]));
  for (const m of o.models) {
    const file = `${modelId(m)}.gguf`;
    const sha256 = await sha256File(m);
    entries.set(file, sha256);
    sizes.set(file, fs.statSync(m).size);
    steps.push({ kind: "copy", from: m, path: path.join(l.modelsDir, file), sha256, mode: 0o440, owner: "root:svc" });
  }
  // Models already listed (added by an earlier install, or by a release that left them the service's): root's again,
  // read-only, as a new one is; else serve re-hashes them at every start and the service could rewrite them (upgrade run).
  const copied = new Set(o.models.map((m) => `${modelId(m)}.gguf`));
  for (const file of entries.keys()) {
    const p = path.join(l.modelsDir, file);
    if (!copied.has(file) && fs.lstatSync(p, { throwIfNoEntry: false })?.isFile()) steps.push({ kind: "touch", path: p, mode: 0o440, owner: "root:svc" });
  }
  if (entries.size) {
    const manifest = [...entries].sort(([a], [b]) => a.localeCompare(b)).map(([f, s]) => `${s}  ${f}\n`).join("");
    steps.push({ kind: "file", path: path.join(l.modelsDir, MANIFEST), content: manifest, mode: 0o640, owner: "root:svc", show: true });
  }
  steps.push({ kind: "first-key" });
  // The daily verify runs as root without CAP_DAC_OVERRIDE: it can append to this file because root owns it;
  // the service (its group) appends its own alerts. Created empty, never truncated.
  steps.push({ kind: "touch", path: path.join(l.logDir, "verify-alerts.log"), mode: 0o660, owner: "root:svc" });
  // Where it records its outcome for /metrics (integrity/verify-status.ts): root creates files there, the service reads.
  if (l.platform === "systemd") steps.push({ kind: "dir", path: path.join(l.logDir, "verify"), mode: 0o750, owner: "root:svc" });
  const modelBytes = [...sizes.values()].reduce((a, b) => a + b, 0);
  // The unit's huge-page tunable as this machine calls for (util/huge-pages.ts: THP on; where freed memory is reported to a hypervisor, measured now).
  const pages = keptPageChoice(installedUnit(l.units["appliance.service"]), hugePageChoice());
  const units = renderUnits(l, o.config, modelBytes, pages.huge, pages.cost);
  for (const [file, content] of Object.entries(units)) {
    steps.push({ kind: "dir", path: path.dirname(file), mode: 0o755, owner: "root" });
    steps.push({ kind: "file", path: file, content, mode: 0o644, owner: "root", show: true });
  }
  return steps;
}

/** The systemd service unit installed before, if it is a readable regular file (launchd: none to read). */
function installedUnit(file: string | undefined): string | undefined {
  try {
    return file && fs.lstatSync(file, { throwIfNoEntry: false })?.isFile() ? fs.readFileSync(file, "utf8") : undefined;
  } catch {
    return undefined; // unreadable: as if none, this install's own measurement goes in
  }
}

interface Ids { uid: number; gid: number }

function idsFor(owner: Owner, l: Layout): Ids | undefined {
  if (owner === "root") return { uid: 0, gid: 0 };
  const a = readAccount(l.account, l.root === "/" ? "/" : l.root);
  if (!a) return undefined; // no account (e.g. under --root): modes still apply, ownership is recorded in the receipt
  return owner === "svc" ? { uid: a.uid, gid: a.gid } : { uid: 0, gid: a.gid };
}

function ownerMatches(p: string, ids: Ids | undefined) {
  if (!ids || process.getuid?.() !== 0) return true;
  const st = fs.statSync(p);
  return st.uid === ids.uid && st.gid === ids.gid;
}

/** Mode, then owner, on an open descriptor: never by path, which a link planted since could redirect. */
function fixFd(fd: number, mode: number, ids: Ids | undefined) {
  fs.fchmodSync(fd, mode);
  if (ids && process.getuid?.() === 0) fs.fchownSync(fd, ids.uid, ids.gid);
}

/**
 * What stands at a path install is about to create or fix must be what install puts there, or nothing: a symbolic
 * link (or another kind of file) is refused. The service account owns its state and log dirs, so it can plant a link
 * where install, as root, would chmod/chown or write (fix-attack run: re-running install made a root-only file
 * readable to it and wrote models into a directory it chose).
 */
function refusePlanted(p: string, want: "dir" | "file") {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return;
  const is = st.isSymbolicLink() ? "a symbolic link" : st.isDirectory() ? "a directory" : st.isFile() ? "a file" : "a special file";
  if ((want === "dir" && st.isDirectory()) || (want === "file" && st.isFile())) return;
  throw new Error(`${p} is ${is}, where install puts a ${want === "dir" ? "directory" : "file"}: something other than install made it; remove it and run install again (nothing there was changed)`);
}

const NOFOLLOW = fs.constants.O_NOFOLLOW;

const ownerLabel = (owner: Owner, l: Layout) => owner === "root" ? "root" : owner === "svc" ? `${l.account}:${l.account}` : `root:${l.account}`;

/** Applies the steps; returns how many changed something. */
export async function applyInstall(o: InstallOptions, steps: Step[]): Promise<{ changed: number; key?: string }> {
  const l = o.layout;
  let changed = 0, key: string | undefined;
  const say = (verb: string, what: string) => o.out(`${o.dryRun ? "would " : ""}${verb} ${what}`);
  for (const s of steps) {
    switch (s.kind) {
      case "dir": {
        const ids = idsFor(s.owner, l);
        refusePlanted(s.path, "dir");
        if (fs.existsSync(s.path) && (fs.statSync(s.path).mode & 0o777) === s.mode && ownerMatches(s.path, ids)) break;
        changed++;
        say("create", `${s.path}/ (${octal(s.mode)} ${ownerLabel(s.owner, l)})`);
        if (o.dryRun) break;
        fs.mkdirSync(s.path, { recursive: true });
        const fd = fs.openSync(s.path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | NOFOLLOW);
        try { fixFd(fd, s.mode, ids); } finally { fs.closeSync(fd); }
        break;
      }
      case "file": case "copy": {
        const ids = idsFor(s.owner, l);
        refusePlanted(s.path, "file");
        const same = fs.existsSync(s.path) && (fs.statSync(s.path).mode & 0o777) === s.mode && ownerMatches(s.path, ids) && (s.kind === "file"
          ? Buffer.from(fs.readFileSync(s.path)).equals(Buffer.from(typeof s.content === "string" ? new TextEncoder().encode(s.content) : s.content))
          : await sha256File(s.path) === s.sha256);
        if (same) break;
        changed++;
        say("write", `${s.path} (${octal(s.mode)} ${ownerLabel(s.owner, l)})${s.kind === "copy" ? ` from ${s.from}, sha256 ${s.sha256}` : ""}`);
        if (o.dryRun) { if (s.kind === "file" && s.show) o.out(String(s.content).replace(/^/gm, "    | ")); break; }
        // Atomic: never a half-written unit or binary; a new file (O_EXCL, not following a link), mode and owner set by
        // descriptor; a link planted at the path is replaced by the rename, not followed.
        if (s.kind === "file") writeFileAtomic(s.path, s.content, { mode: s.mode, owner: ids && process.getuid?.() === 0 ? ids : null });
        else {
          const tmp = `${s.path}.install-tmp`;
          if (copyHashed(s.from, tmp, s.mode, ids) !== s.sha256) { // the bytes written are the ones the plan recorded
            fs.rmSync(tmp, { force: true });
            throw new Error(`${s.from} changed while it was being installed (sha256 no longer ${s.sha256}); nothing was replaced: run install again`);
          }
          fs.renameSync(tmp, s.path);
        }
        break;
      }
      case "touch": {
        const ids = idsFor(s.owner, l);
        refusePlanted(s.path, "file");
        if (fs.existsSync(s.path) && (fs.statSync(s.path).mode & 0o777) === s.mode && ownerMatches(s.path, ids)) break;
        changed++;
        say("create", `${s.path} (${octal(s.mode)} ${ownerLabel(s.owner, l)}), kept if it exists`);
        if (o.dryRun) break;
        const fd = fs.openSync(s.path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | NOFOLLOW, s.mode);
        try { fixFd(fd, s.mode, ids); } finally { fs.closeSync(fd); }
        break;
      }
      case "native": {
        if (!NATIVE_BUNDLE) break; // run from source: serve uses node-llama-cpp's own files
        const dir = path.join(s.path, NATIVE_BUNDLE.version);
        if (fs.existsSync(dir) && checkNativeDir(dir, NATIVE_BUNDLE).length === 0 && rootOwned(dir, l.root)) break;
        changed++;
        say("write", `the embedded native libraries to ${dir}/ (dirs 0755, files 0444, root)`);
        if (!o.dryRun) await installNative(s.path);
        break;
      }
      case "first-key": {
        const file = keysFilePath(l.stateDir);
        refusePlanted(file, "file");
        const store = fs.existsSync(file) ? new KeyStore(file) : undefined;
        if (store && store.list().some((k) => !k.revoked)) break;
        changed++;
        say("create", `the first API key (admin scope) in ${file} (0600 ${l.account}), stored only as a hash`);
        if (o.dryRun) break;
        key = new KeyStore(file).create({ name: "admin", scopes: ["chat", "completions", "embeddings", "models", "admin"] }).key;
        const fd = fs.openSync(file, fs.constants.O_RDONLY | NOFOLLOW);
        try { fixFd(fd, 0o600, idsFor("svc", l)); } finally { fs.closeSync(fd); }
        break;
      }
    }
  }
  return { changed, key };
}

/** The whole install: plan, apply, then (live installs only) the service manager and the health wait. */
export async function install(o: InstallOptions): Promise<{ changed: number; started?: boolean; key?: string; healthy?: boolean; reason?: string }> {
  const live = o.layout.root === "/";
  const account = live ? ensureAccount(o.layout, o.run, o.dryRun, o.out) : { changed: false };
  if (account.error) return { changed: 0, healthy: false, reason: account.error };
  const steps = await planInstall(o);
  const result = await applyInstall(o, steps);
  if (account.changed) result.changed++;
  writeReceipt(o, steps);
  if (!live) {
    if (result.changed) o.out(`(--root ${o.layout.root}: account creation and service manager calls skipped)`);
    return result;
  }
  // Nothing to change on disk still means nothing to do only if the service runs: a second install starts a stopped one.
  const started = !result.changed && !serviceRunning(o.layout, o.run);
  if (started) o.out("the installation is up to date but the service is not running: starting it");
  else if (!result.changed && !o.dryRun) return result;
  const failed = runSteps(serviceSteps(o.layout, o.firewall), o.run, o.dryRun, o.out);
  if (failed) return { ...result, started, healthy: false, reason: failed };
  if (o.dryRun) return { ...result, started };
  const health = await waitHealthy(healthUrl(o.config), 30_000, { mtls: !!o.config.tlsClientCa });
  return { ...result, started, healthy: health.ok, reason: health.reason };
}

/** What install laid down (paths as the system sees them, modes, owners): for uninstall, packagers and tests. */
function writeReceipt(o: InstallOptions, steps: Step[]) {
  if (o.dryRun) return;
  const sys = systemView(o.layout);
  const rel = (p: string) => path.join("/", path.relative(o.layout.root, p));
  const files = steps.filter((s): s is Extract<Step, { path: string }> => "path" in s)
    .map((s) => ({ path: rel(s.path), type: s.kind === "dir" || s.kind === "native" ? "dir" : "file", mode: octal(s.mode), owner: ownerLabel(s.owner, o.layout) }));
  const unique = [...new Map(files.map((f) => [f.path, f])).values()];
  const receipt = path.join(o.layout.configDir, "install-receipt.json");
  const text = JSON.stringify({ platform: o.layout.platform, account: sys.account, files: unique }, null, 2) + "\n";
  if (!fs.existsSync(receipt) || fs.readFileSync(receipt, "utf8") !== text) fs.writeFileSync(receipt, text, { mode: 0o640 });
}

/** Whether serve would take `dir` as installed: root-owned, not writable by group or others, up to / (installNative repairs it). */
function rootOwned(dir: string, top: string): boolean {
  try { checkRootOwned(dir, top); return true; } catch { return false; }
}
