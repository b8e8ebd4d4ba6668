/**
 * Where an installed appliance lives, per platform. Every path can be put
 * under a root prefix (`install --root DIR`) so tests and packagers can
 * inspect the result without touching the real system.
 */
import path from "node:path";
import { INSTALLED_CONFIG } from "../config/load";

export type Platform = "systemd" | "launchd";

export interface Layout {
  platform: Platform;
  root: string;
  account: string;
  bin: string;
  binBackup: string;
  binDigest: string;
  configDir: string;
  configFile: string;
  stateDir: string;
  modelsDir: string;
  logDir: string;
  /** Root-only (0700) directory of the root-held audit anchors, which the service account can neither write nor list. */
  anchorDir: string;
  /** Unit/plist file names → full paths. */
  units: Record<string, string>;
  apparmorProfile?: string;
  /** Log rotation config: logrotate(8) on Linux, newsyslog(8) on macOS. */
  logrotate?: string;
}

export const detectPlatform = (): Platform => (process.platform === "darwin" ? "launchd" : "systemd");

/** The paths as the service sees them (root "/"), and as this process writes them (under root). */
export function layout(platform: Platform, root = "/"): Layout {
  const at = (p: string) => path.join(root, p);
  const common = { root, bin: at("/usr/local/bin/appliance"), binBackup: at("/usr/local/bin/appliance.previous") };
  if (platform === "systemd") {
    const unitDir = at("/etc/systemd/system");
    return {
      ...common, platform, account: "appliance",
      binDigest: at("/etc/appliance/binary.sha256"),
      configDir: at(path.dirname(INSTALLED_CONFIG.systemd)), configFile: at(INSTALLED_CONFIG.systemd),
      stateDir: at("/var/lib/appliance"), modelsDir: at("/var/lib/appliance/models"), logDir: at("/var/log/appliance"), anchorDir: at("/var/lib/appliance-anchor"),
      units: Object.fromEntries(["appliance.service", "appliance-verify.service", "appliance-verify.timer", "appliance-anchor.service", "appliance-anchor.timer"].map((u) => [u, path.join(unitDir, u)])),
      apparmorProfile: at("/etc/apparmor.d/usr.local.bin.appliance"),
      logrotate: at("/etc/logrotate.d/appliance"),
    };
  }
  const unitDir = at("/Library/LaunchDaemons");
  return {
    ...common, platform, account: "_appliance",
    binDigest: at("/usr/local/etc/appliance/binary.sha256"),
    configDir: at(path.dirname(INSTALLED_CONFIG.launchd)), configFile: at(INSTALLED_CONFIG.launchd),
    stateDir: at("/Library/Application Support/appliance"), modelsDir: at("/Library/Application Support/appliance/models"),
    logDir: at("/Library/Logs/appliance"), anchorDir: at("/var/db/appliance-anchor"),
    units: Object.fromEntries(["local.appliance.server.plist", "local.appliance.verify.plist", "local.appliance.anchor.plist"].map((u) => [u, path.join(unitDir, u)])),
    logrotate: at("/etc/newsyslog.d/appliance.conf"),
  };
}

/** The same layout as seen from inside the installed system (root "/"), for unit contents. */
export const systemView = (l: Layout) => layout(l.platform, "/");
