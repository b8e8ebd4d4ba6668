/**
 * Pure renderers: the unit, timer, plist and AppArmor templates (kept in
 * systemd/ and launchd/ at the top level, embedded in the binary at build
 * time) filled in from one Layout and Config.
 */
import { formatFaultCost, parseFaultCost, type FaultCost } from "../util/fault-probe";
import { PAGE_PROBE } from "../util/huge-pages";
import serviceTpl from "../../systemd/appliance.service" with { type: "text" };
import verifyServiceTpl from "../../systemd/appliance-verify.service" with { type: "text" };
import timerTpl from "../../systemd/appliance-verify.timer" with { type: "text" };
import anchorServiceTpl from "../../systemd/appliance-anchor.service" with { type: "text" };
import anchorTimerTpl from "../../systemd/appliance-anchor.timer" with { type: "text" };
import apparmorTpl from "../../systemd/appliance.apparmor" with { type: "text" };
import logrotateTpl from "../../systemd/appliance.logrotate" with { type: "text" };
import newsyslogTpl from "../../launchd/appliance.newsyslog" with { type: "text" };
import serverPlistTpl from "../../launchd/local.appliance.server.plist" with { type: "text" };
import verifyPlistTpl from "../../launchd/local.appliance.verify.plist" with { type: "text" };
import anchorPlistTpl from "../../launchd/local.appliance.anchor.plist" with { type: "text" };
import { otlpAllow } from "../integrity/egress";
import os from "node:os";
import path from "node:path";
import type { Config } from "../config/schema";
import { isLoopback } from "../guards/host";
import { systemView, type Layout } from "./layout";
import { SYSTEM_NATIVE_DIR } from "../engine/native";
import { DEFAULTS } from "../config/load";

const TEMPLATES: Record<string, string> = {
  "appliance.service": serviceTpl,
  "appliance-verify.service": verifyServiceTpl,
  "appliance-verify.timer": timerTpl,
  "appliance-anchor.service": anchorServiceTpl,
  "appliance-anchor.timer": anchorTimerTpl,
  "local.appliance.server.plist": serverPlistTpl,
  "local.appliance.verify.plist": verifyPlistTpl,
  "local.appliance.anchor.plist": anchorPlistTpl,
};

const xmlEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function render(template: string, vars: Record<string, string>, xml = false): string {
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`template variable ${name} has no value`);
    return xml ? xmlEscape(v) : v;
  });
}

export type UnitConfig = Pick<Config, "memoryMax" | "cpuQuota" | "host" | "allowPublicBind"> & Partial<Pick<Config, "tracing" | "upstreams" | "engine">>;

/**
 * Gateway mode: the upstreams given by IP address, which the egress lock must let through. A host name cannot
 * be allowed (IPAddressAllow= takes addresses): under the lock such an upstream is unreachable (README, Scaling out).
 */
export function upstreamAllow(config: Partial<Pick<Config, "upstreams">>): string[] {
  const hosts = (config.upstreams ?? []).map((u) => new URL(u.url).hostname.replace(/^\[|\]$/g, ""));
  return [...new Set(hosts.filter((h) => /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || (h.includes(":") && /^[0-9a-f:.]+$/i.test(h))))];
}


/** A slow disk's pace (bytes/s) for sizing the start timeout: serve reads every model twice (hash, then load). */
const SLOW_DISK = 50 * 1024 * 1024;

/** TimeoutStartSec for models totalling `bytes`: systemd's 90 s for small ones, more for big ones. */
export const startTimeoutSec = (bytes: number) => Math.max(90, Math.ceil(60 + (2 * bytes) / SLOW_DISK));

/** MemoryMax=/CPUQuota= for this machine: "auto" is measured here, at install (flags override). */
export function unitLimits(config: Pick<Config, "memoryMax" | "cpuQuota">): { MEMORY_MAX: string; CPU_QUOTA: string } {
  return {
    MEMORY_MAX: config.memoryMax === "auto" ? `${Math.floor((os.totalmem() * 0.75) / 2 ** 20)}M` : config.memoryMax,
    CPU_QUOTA: config.cpuQuota === "auto" ? `${os.availableParallelism() * 100}%` : config.cpuQuota,
  };
}

/**
 * engine.dir, checked against the dirs the service (or an operator) writes: the unit and the AppArmor profile let the
 * service execute from it, so it must not lie in or above any of them (NoExecPaths= is there to keep those dirs
 * non-executable).
 */
function engineDirOf(s: Layout, config: UnitConfig): string {
  const dir = config.engine?.dir ?? DEFAULTS.engine.dir;
  const within = (a: string, b: string) => a === b || a.startsWith(b.endsWith("/") ? b : `${b}/`);
  for (const [name, other] of [["state dir", s.stateDir], ["models dir", s.modelsDir], ["log dir", s.logDir], ["config dir", s.configDir], ["audit anchor dir", s.anchorDir]] as const) {
    if (within(dir, other) || within(other, dir)) throw new Error(`engine.dir ${dir} overlaps the ${name} ${other}: the service may execute from engine.dir, so it must be a dir of its own (default ${DEFAULTS.engine.dir})`);
  }
  return dir;
}

/**
 * `hugePages`: the service's large buffers in huge pages (util/huge-pages.ts hugePageChoice, which install asks on the
 * machine it installs on), and what that measured, if it did (`pageProbe`, set beside the tunable for serve to log);
 * verify leaves that line out of its comparison, as it does what install sized.
 */
export function templateVars(l: Layout, config: UnitConfig, modelBytes = 0, hugePages = true, pageProbe?: FaultCost): Record<string, string> {
  const s = systemView(l); // contents name the paths as the running system sees them
  // IPAddressAllow= filters both directions: with an allowed public bind, remote clients must get in.
  const publicBind = config.allowPublicBind && !isLoopback(config.host);
  return {
    ACCOUNT: s.account, BIN: s.bin, CONFIG_FILE: s.configFile, CONFIG_DIR: s.configDir, STATE_DIR: s.stateDir,
    NATIVE_DIR: SYSTEM_NATIVE_DIR,
    // Where serve may load an engine built on this machine (engine.dir; appliance engine build).
    ENGINE_DIR: engineDirOf(s, config),
    MODELS_DIR: s.modelsDir, LOG_DIR: s.logDir, ANCHOR_FILE: path.join(s.anchorDir, "audit.anchors"), ...unitLimits(config),
    // newsyslog.conf fields split on whitespace: its G flag takes a shell pattern, where "?" matches the space.
    STATE_GLOB: s.stateDir.replace(/\s/g, "?"), LOG_GLOB: s.logDir.replace(/\s/g, "?"),
    IP_ALLOW: publicBind ? "any" : [...new Set(["localhost", ...otlpAllow(config), ...upstreamAllow(config)])].join(" "), START_TIMEOUT: `${startTimeoutSec(modelBytes)}s`,
    HUGETLB: hugePages ? "1" : "0", PAGE_PROBE: pageProbe ? ` ${PAGE_PROBE}=${formatFaultCost(pageProbe)}` : "",
  };
}

/**
 * The huge-page choice to install, given the unit installed before (`unit`) and this install's (`fresh`). Where both
 * measured, the installed line stays as it is, whatever this measurement says: on a VM that reports freed memory the
 * same measurement read a huge page's first touch at 0.35 ms one moment and 3.58 ms another (4 KiB pages: 1.90 and
 * 1.96 ms per 2 MiB; 2026-12-07), dearest right after memory was freed, as it is when an install follows a service
 * stop. Flipped on that (a 2× margin did not hold), a second install rewrote the unit and restarted the service for
 * nothing. A fresh choice made without measuring (THP off now, no reporting now) or over a unit that has no
 * measurement is this install's. To measure again: uninstall, then install.
 */
export function keptPageChoice(unit: string | undefined, fresh: { huge: boolean; cost?: FaultCost }): { huge: boolean; cost?: FaultCost } {
  const m = /^Environment=GLIBC_TUNABLES=glibc\.malloc\.hugetlb=([01]) APPLIANCE_PAGE_PROBE=(\S+)$/m.exec(unit ?? "");
  const cost = parseFaultCost(m?.[2]);
  if (!fresh.cost || !cost) return fresh;
  return { huge: m![1] === "1", cost };
}

/** Every service file for the layout's platform: path (under root) → contents. */
export function renderUnits(l: Layout, config: UnitConfig, modelBytes = 0, hugePages = true, pageProbe?: FaultCost): Record<string, string> {
  const vars = templateVars(l, config, modelBytes, hugePages, pageProbe);
  const out: Record<string, string> = {};
  for (const [name, file] of Object.entries(l.units)) out[file] = render(TEMPLATES[name]!, vars, name.endsWith(".plist"));
  if (l.apparmorProfile) out[l.apparmorProfile] = render(apparmorTpl, vars);
  if (l.logrotate) out[l.logrotate] = render(l.platform === "systemd" ? logrotateTpl : newsyslogTpl, vars);
  return out;
}
