/**
 * The parts of install that talk to the operating system: the service account
 * and the service manager (systemctl / launchctl), AppArmor and the macOS pf
 * anchor. Everything goes through a Runner so --dry-run can print instead.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { readAccount } from "./accounts";
import type { Layout } from "./layout";
import { SYSTEM_NATIVE_DIR } from "../engine/native";

/** `timeoutMs`: the command is killed past it (code 124, saying so). */
export type Runner = (argv: string[], opts?: { timeoutMs?: number }) => { code: number; out: string };

/**
 * Runs a command to completion (stdout and stderr together); undefined when it cannot be started at all. Past
 * `timeoutMs` it is killed: code 124 (timeout(1)'s), and the output says so; killed by a signal: 128 + its number,
 * as a shell reports it (it read "exited with code 1" either way).
 */
export function runCommand(argv: string[], env?: Record<string, string | undefined>, timeoutMs?: number): { code: number; out: string } | undefined {
  // Output goes to an unlinked temp file, not a pipe: with a pipe, spawnSync waited for it to close, so a command that
  // left a background child holding it (exited 0 at once) was waited on until the bound and reported "stopped"
  // (fix-attack run). Such a child is not killed here: only the command itself is.
  const file = path.join(os.tmpdir(), `appliance-run-${process.pid}-${crypto.randomUUID()}`);
  let fd: number | undefined;
  try { fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600); } catch { /* no usable temp dir: pipes */ } finally { fs.rmSync(file, { force: true }); }
  try {
    const to = fd === undefined ? "pipe" : fd;
    const r = Bun.spawnSync(argv, { stdout: to, stderr: to, env, ...(timeoutMs && { timeout: timeoutMs, killSignal: "SIGKILL" }) });
    const out = fd === undefined ? `${r.stdout ?? ""}${r.stderr ?? ""}` : tail(fd);
    if (r.exitedDueToTimeout) return { code: 124, out: `${out}${out && !out.endsWith("\n") ? "\n" : ""}no answer after ${Math.round(timeoutMs! / 1000)} s: killed` };
    if (r.exitCode === null && r.signalCode) {
      return { code: 128 + (os.constants.signals[r.signalCode as keyof typeof os.constants.signals] ?? 0), out: `${out}${out && !out.endsWith("\n") ? "\n" : ""}killed by ${r.signalCode}` };
    }
    return { code: r.exitCode ?? 1, out };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** A command's output: its last 64 KiB (what a message quotes from it; a command that printed gigabytes is not read whole). */
function tail(fd: number): string {
  const size = fs.fstatSync(fd).size, keep = Math.min(size, 64 << 10);
  const buf = Buffer.alloc(keep);
  const n = fs.readSync(fd, buf, 0, keep, size - keep);
  return buf.subarray(0, n).toString();
}

export const realRunner: Runner = (argv, opts) => runCommand(argv, undefined, opts?.timeoutMs) ?? { code: 127, out: `${argv[0]}: command not found` };

/** Reads "Y" where AppArmor is enabled in the kernel. */
export const APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled";

/** Creates the service account if missing: Linux system user without login; macOS hidden role account (_name, UID 200-400). */
export function ensureAccount(l: Layout, run: Runner, dryRun: boolean, out: (s: string) => void): { changed: boolean; error?: string } {
  if (readAccount(l.account)) return { changed: false };
  const cmds = l.platform === "systemd"
    ? [["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", l.stateDir, "--shell", "/usr/sbin/nologin", l.account]]
    : macAccountCommands(l.account, run);
  return { changed: true, error: runSteps(cmds.map((argv) => ({ argv, why: "create the service account" })), run, dryRun, out) };
}

function macAccountCommands(name: string, run: Runner): string[][] {
  const used = new Set([...run(["dscl", ".", "-list", "/Users", "UniqueID"]).out.matchAll(/\s(\d+)$/gm),
    ...run(["dscl", ".", "-list", "/Groups", "PrimaryGroupID"]).out.matchAll(/\s(\d+)$/gm)].map((m) => Number(m[1])));
  let id = 200;
  while (used.has(id) && id < 400) id++;
  const u = `/Users/${name}`, g = `/Groups/${name}`;
  return [
    ["dscl", ".", "-create", g], ["dscl", ".", "-create", g, "PrimaryGroupID", String(id)], ["dscl", ".", "-create", g, "Password", "*"],
    ["dscl", ".", "-create", u], ["dscl", ".", "-create", u, "UniqueID", String(id)], ["dscl", ".", "-create", u, "PrimaryGroupID", String(id)],
    ["dscl", ".", "-create", u, "UserShell", "/usr/bin/false"], ["dscl", ".", "-create", u, "NFSHomeDirectory", "/var/empty"],
    ["dscl", ".", "-create", u, "RealName", "appliance service"], ["dscl", ".", "-create", u, "IsHidden", "1"], ["dscl", ".", "-create", u, "Password", "*"],
  ];
}

export interface RunStep { argv: string[]; why: string; allowFail?: boolean }

/** Says each step (`would run` under --dry-run), runs it, and stops at the first failure that is not allowed. */
export function runSteps(steps: RunStep[], run: Runner, dryRun: boolean, out: (s: string) => void): string | undefined {
  for (const s of steps) {
    out(`${dryRun ? "would run" : "run"}: ${s.argv.join(" ")}   # ${s.why}`);
    if (dryRun) continue;
    const r = run(s.argv);
    if (r.code !== 0 && !s.allowFail) return `${s.argv.join(" ")} failed: ${r.out.trim().slice(-500)}`;
  }
  return undefined;
}

const apparmorActive = () => {
  try { return fs.readFileSync(APPARMOR_ENABLED, "utf8").trim() === "Y"; } catch { return false; }
};

/** Whether the service manager runs the server now (systemd: active; launchd: the job is loaded). */
export function serviceRunning(l: Layout, run: Runner): boolean {
  return l.platform === "systemd" ? run(["systemctl", "is-active", "appliance.service"]).out.trim() === "active"
    : run(["launchctl", "print", "system/local.appliance.server"]).code === 0;
}

/** Service manager calls after files changed (or to start a stopped service). */
export function serviceSteps(l: Layout, firewall: boolean): RunStep[] {
  if (l.platform === "systemd") {
    return [
      ...(apparmorActive() && l.apparmorProfile ? [{ argv: ["apparmor_parser", "-r", l.apparmorProfile], why: "load the AppArmor profile" }] : []),
      { argv: ["systemctl", "daemon-reload"], why: "pick up the units" },
      { argv: ["systemctl", "reset-failed", "appliance.service"], why: "clear an earlier start-limit hit", allowFail: true },
      // Enabled without --now, then restarted once: `enable --now` and a restart started it twice on a fresh install
      // (every model loaded twice, and two of the start limit's five starts).
      { argv: ["systemctl", "enable", "appliance.service"], why: "start at boot" },
      { argv: ["systemctl", "enable", "--now", "appliance-verify.timer", "appliance-anchor.timer"], why: "daily verify at 06:00; audit anchor every 5 minutes" },
      { argv: ["systemctl", "restart", "appliance.service"], why: "start it now (or again, on the new binary/config)" },
    ];
  }
  const steps: RunStep[] = [];
  for (const [name, file] of Object.entries(l.units)) {
    const label = name.replace(/\.plist$/, "");
    steps.push({ argv: ["launchctl", "bootout", `system/${label}`], why: "unload the old job, if any", allowFail: true });
    steps.push({ argv: ["launchctl", "bootstrap", "system", file], why: `load ${label}` });
  }
  if (firewall) steps.push(...pfSteps(l));
  return steps;
}

export const PF_ANCHOR = "/etc/pf.anchors/local.appliance";

/** The pf rules: the service account may talk to loopback and nothing else. */
export const pfRules = (account: string) => `# appliance egress lock: the service account talks to loopback only.\npass out quick on lo0 all user ${account}\nblock out quick proto { tcp udp } user ${account}\n`;

function pfSteps(l: Layout): RunStep[] {
  const conf = "/etc/pf.conf";
  const script = [
    `cp -p ${conf} ${conf}.appliance.bak`,
    `printf '%s' '${pfRules(l.account)}' > ${PF_ANCHOR}`,
    `grep -q 'anchor "local.appliance"' ${conf} || printf '\\nanchor "local.appliance"\\nload anchor "local.appliance" from "${PF_ANCHOR}"\\n' >> ${conf}`,
    `pfctl -nf ${conf} || { cp -p ${conf}.appliance.bak ${conf}; echo "pf.conf invalid; restored the backup" >&2; exit 1; }`,
    `pfctl -f ${conf} && (pfctl -E || true)`,
  ].join(" && ");
  return [{ argv: ["/bin/sh", "-c", script], why: "back up pf.conf, add the appliance anchor, validate with pfctl -nf, load" }];
}

/** The journal identifier of root's mark where an audit chain ends (uninstall --purge); audit verify --journal reads it. */
export const AUDIT_CHAIN_MARK_ID = "appliance-audit-chain";

export function uninstallSteps(l: Layout, purge: boolean): RunStep[] {
  const steps: RunStep[] = l.platform === "systemd"
    ? [{ argv: ["systemctl", "disable", "--now", "appliance.service", "appliance-verify.timer", "appliance-anchor.timer"], why: "stop and disable", allowFail: true }]
    : Object.keys(l.units).map((n) => ({ argv: ["launchctl", "bootout", `system/${n.replace(/\.plist$/, "")}`], why: "unload", allowFail: true }));
  if (l.platform === "systemd" && l.apparmorProfile && apparmorActive()) steps.push({ argv: ["apparmor_parser", "-R", l.apparmorProfile], why: "unload the profile", allowFail: true });
  // The audit chain ends with the state dir: the journal keeps its checkpoints (made with the key purged), so root marks
  // where it ended, and `audit verify --journal` reads only the checkpoints after the newest mark (only root's count).
  if (purge && l.platform === "systemd") {
    steps.push({ argv: ["systemd-cat", "-t", AUDIT_CHAIN_MARK_ID, "-p", "notice", "echo", "audit chain ended: appliance uninstall --purge removed the state dir and its audit key"],
      why: "mark in the journal where this audit chain ends", allowFail: true });
  }
  if (purge) steps.push(l.platform === "systemd"
    ? { argv: ["userdel", l.account], why: "remove the service account", allowFail: true }
    : { argv: ["dscl", ".", "-delete", `/Users/${l.account}`], why: "remove the service account", allowFail: true });
  return steps;
}

/** Files uninstall removes; state (models, keys, audit), logs and config stay unless purge. */
export function uninstallPaths(l: Layout, purge: boolean): string[] {
  const units = Object.values(l.units);
  // systemd's own file for us: the verify timer's Persistent= stamp.
  const systemdState = l.platform === "systemd" ? [path.join(l.root, "var/lib/systemd/timers/stamp-appliance-verify.timer")] : [];
  // The operator's drop-ins (the README's GPU one) are configuration: kept unless purge, like the config (a plain
  // uninstall removed them, and "uninstall, then install" lost a GPU drop-in; live-service run).
  const dropIns = l.platform === "systemd" ? units.map((u) => `${u}.d`) : [];
  // The native libraries belong to the binary: removed with it (a reinstall writes them again). The built engine
  // (engine.dir) is removed by uninstall only where provably ours (engine-versions.ts), then their parent if empty.
  // The temporary names update and rollback use beside the binary go too (a crash between their steps leaves them).
  const files = [...units, ...systemdState, l.bin, l.binBackup, l.binDigest, ...binTemps(l), path.join(l.root, SYSTEM_NATIVE_DIR), ...(l.apparmorProfile ? [l.apparmorProfile] : []), ...(l.logrotate ? [l.logrotate] : [])];
  // The root-held audit anchors (the anchor job's) are state: kept unless purge.
  return purge ? [...files, ...dropIns, l.stateDir, l.logDir, l.configDir, l.anchorDir] : files;
}

/** The temporary names update and rollback give the binary beside it (service/update.ts). */
export function binTemps(l: Pick<Layout, "bin" | "binBackup">): string[] {
  return [`${l.bin}.update-tmp`, `${l.bin}.link-tmp`, `${l.binBackup}.link-tmp`, path.join(path.dirname(l.bin), ".appliance.rollback-tmp")];
}
