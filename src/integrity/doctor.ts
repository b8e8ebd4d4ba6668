/**
 * `appliance doctor`: the platform's security baseline. macOS: FileVault, SIP,
 * Gatekeeper. Linux: root on dm-crypt/LUKS, AppArmor/SELinux, an active
 * firewall, unattended security updates, a systemd new enough for the unit's
 * directives. A missing command or one that needs root gives "unknown".
 */
import fs from "node:fs";
import { APPARMOR_ENABLED, runCommand } from "../service/platform";
import type { Check } from "./report";
import { OFFLINE } from "./verify";

type Run = (argv: string[]) => { code: number; out: string } | undefined;

/** The real commands, in the C locale so their output parses; undefined when one is not installed. */
export const realRun: Run = (argv) => {
  const r = runCommand(argv, { ...process.env, LC_ALL: "C" });
  return r && { code: r.code, out: r.out.trim() };
};

const unknown = (name: string, why: string): Check => ({ name, status: "unknown", detail: why });

export function macChecks(run: Run): Check[] {
  const fv = run(["fdesetup", "status"]);
  const sip = run(["csrutil", "status"]);
  const gk = run(["spctl", "--status"]);
  return [
    !fv ? unknown("filevault", "fdesetup not found") : /FileVault is On/i.test(fv.out)
      ? { name: "filevault", status: "ok", detail: "FileVault is on" } : { name: "filevault", status: "fail", detail: fv.out.split("\n")[0] ?? "FileVault is off" },
    !sip ? unknown("sip", "csrutil not found") : /enabled/i.test(sip.out) && !/disabled/i.test(sip.out)
      ? { name: "sip", status: "ok", detail: "System Integrity Protection is enabled" } : { name: "sip", status: "fail", detail: sip.out.split("\n")[0] ?? "" },
    !gk ? unknown("gatekeeper", "spctl not found") : /assessments enabled/i.test(gk.out)
      ? { name: "gatekeeper", status: "ok", detail: "Gatekeeper assessments enabled" } : { name: "gatekeeper", status: "fail", detail: gk.out },
  ];
}

export function linuxChecks(run: Run, read = (p: string) => (fs.existsSync(p) ? fs.readFileSync(p, "utf8") : undefined)): Check[] {
  const checks: Check[] = [];
  // Disk encryption: is / (or a device under it) a dm-crypt mapping?
  const lsblk = run(["lsblk", "-s", "-n", "-o", "TYPE", (run(["findmnt", "-n", "-o", "SOURCE", "/"])?.out ?? "").split("[")[0] || "/"]);
  if (!lsblk || lsblk.code !== 0) checks.push(unknown("disk-encryption", "cannot inspect the root device (lsblk/findmnt)"));
  else checks.push(/\bcrypt\b/.test(lsblk.out) ? { name: "disk-encryption", status: "ok", detail: "root filesystem is on dm-crypt/LUKS" }
    : { name: "disk-encryption", status: "fail", detail: "root filesystem is not on dm-crypt/LUKS" });
  // Mandatory access control.
  const aa = read(APPARMOR_ENABLED)?.trim();
  const se = run(["getenforce"]);
  if (aa === "Y") checks.push({ name: "mac", status: "ok", detail: "AppArmor is enabled" });
  else if (se && /Enforcing/i.test(se.out)) checks.push({ name: "mac", status: "ok", detail: "SELinux is enforcing" });
  else if (aa === undefined && !se) checks.push(unknown("mac", "neither AppArmor nor SELinux status is readable"));
  else checks.push({ name: "mac", status: "fail", detail: "neither AppArmor nor SELinux (enforcing) is active" });
  // Firewall.
  const nft = run(["nft", "list", "ruleset"]);
  const ufw = run(["ufw", "status"]);
  const fwd = run(["firewall-cmd", "--state"]);
  if (ufw && /Status: active/i.test(ufw.out)) checks.push({ name: "firewall", status: "ok", detail: "ufw is active" });
  else if (fwd && /running/.test(fwd.out)) checks.push({ name: "firewall", status: "ok", detail: "firewalld is running" });
  else if (nft && nft.code === 0 && /\bchain\b/.test(nft.out)) checks.push({ name: "firewall", status: "ok", detail: "nftables has rules loaded" });
  else if (!nft && !ufw && !fwd) checks.push(unknown("firewall", "no nft, ufw or firewall-cmd"));
  else if (nft && nft.code !== 0 && /permission|Operation not permitted/i.test(nft.out)) checks.push(unknown("firewall", "needs root to read the ruleset"));
  else checks.push({ name: "firewall", status: "fail", detail: "no active firewall found" });
  // Unattended security updates.
  const auto = read("/etc/apt/apt.conf.d/20auto-upgrades");
  const dnf = read("/etc/dnf/automatic.conf");
  if (auto !== undefined) checks.push(/Unattended-Upgrade\s+"1"/.test(auto) ? { name: "auto-updates", status: "ok", detail: "unattended-upgrades enabled" }
    : { name: "auto-updates", status: "fail", detail: "unattended-upgrades is not enabled" });
  else if (dnf !== undefined) checks.push(/apply_updates\s*=\s*yes/.test(dnf) ? { name: "auto-updates", status: "ok", detail: "dnf-automatic applies updates" }
    : { name: "auto-updates", status: "fail", detail: "dnf-automatic does not apply updates" });
  else checks.push({ name: "auto-updates", status: "fail", detail: "no unattended security updates configured" });
  // systemd version: ProtectProc=/ProcSubset= need 247.
  const sd = run(["systemctl", "--version"]) ?? run(["systemd-analyze", "--version"]);
  const v = Number(/systemd (\d+)/.exec(sd?.out ?? "")?.[1]);
  checks.push(!v ? unknown("systemd", "systemd version not found")
    : v >= 247 ? { name: "systemd", status: "ok", detail: `systemd ${v} supports every directive of the unit` }
    : { name: "systemd", status: "fail", detail: `systemd ${v} is older than 247: ProtectProc=/ProcSubset= are ignored` });
  checks.push(egressLockCheck(run));
  return checks;
}

/**
 * Can systemd attach the unit's egress lock (IPAddressDeny=any) here? The installed binary's own probe
 * (verify) in a transient unit with the same IP sandbox, as the service's pre-start verify runs it.
 */
function egressLockCheck(run: Run): Check {
  const bin = "/usr/local/bin/appliance";
  // The unit's environment, offline variables included: without them the probe's own environment check failed, and
  // verify alerted (syslog, verify-alerts.log, the alert metric) on every doctor run. --collect: a probe that exits
  // non-zero leaves no failed transient unit behind.
  const env = Object.entries({ APPLIANCE_SERVICE: "1", APPLIANCE_CONFIG: "/etc/appliance/config.json", ...OFFLINE }).flatMap(([k, v]) => ["-E", `${k}=${v}`]);
  const r = run(["systemd-run", "--wait", "--pipe", "--quiet", "--collect", "-p", "IPAddressDeny=any", "-p", "IPAddressAllow=localhost",
    ...env, bin, "verify", "--json", "--skip-models"]);
  if (!r) return unknown("egress-lock", "systemd-run not found");
  let c: Check | undefined;
  try { c = (JSON.parse(r.out.slice(r.out.indexOf("{"), r.out.lastIndexOf("}") + 1)) as { checks: Check[] }).checks.find((x) => x.name === "egress"); } catch { /* below */ }
  if (!c) return unknown("egress-lock", `cannot run the probe (${process.getuid?.() === 0 ? "needs a running systemd and the installed service" : "needs root and systemd"}): ${r.out.split("\n")[0] ?? ""}`);
  // A "warn" policy turns the probe's failure into "unknown" for verify; doctor reports the machine as it is.
  const off = c.status === "fail" || c.detail.startsWith("WARNING");
  return { name: "egress-lock", status: off ? "fail" : c.status, detail: c.detail };
}

export const runDoctor = (platform = process.platform, run: Run = realRun): Check[] =>
  platform === "darwin" ? macChecks(run) : linuxChecks(run);
