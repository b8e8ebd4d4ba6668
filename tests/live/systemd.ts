/**
 * A real systemd booted in a container, for the live service tests: an overlayfs
 * (lower = this machine's /, upper = a tmpfs) booted with systemd-nspawn on a
 * private network, commands run inside through nsenter. Nothing is faked: when
 * this machine cannot boot it (not root, no systemd-nspawn, no overlayfs), boot()
 * says why and the live tests skip loudly.
 */
import { afterAll } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Exec { code: number; out: string; err: string }

export interface LiveSystemd {
  /** The container's root as this process sees it (write files into the container here). */
  root: string;
  /** PID of the container's systemd, as this machine sees it. */
  pid: number;
  /** Whether systemd's BPF IP firewall works in this boot. */
  bpf: boolean;
  exec(argv: string[], opts?: { env?: Record<string, string>; timeoutMs?: number }): Exec;
  /** Shell command inside the container. */
  sh(script: string, timeoutMs?: number): Exec;
  /** Polls `check` every 200 ms until it returns a value other than undefined or the deadline passes. */
  poll<T>(what: string, check: () => T | undefined, timeoutMs?: number): Promise<T>;
  /** Powers the container off and boots it again on the same upper layer (a reboot). */
  reboot(): Promise<void>;
  stop(): Promise<void>;
}

const NSPAWN = "/usr/bin/systemd-nspawn";
/** The container's own non-loopback address (on lo: the network stays private). */
export const OWN_ADDRESS = "10.77.0.1";

/** Why this machine cannot boot the container, or undefined when it can try. */
function cannotBoot(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root (systemd-nspawn and overlay mounts need root)";
  if (!fs.existsSync(NSPAWN)) return "systemd-nspawn missing (Debian: apt-get install systemd-container; scripts/test-tools.sh does it as root)";
  if (!fs.readFileSync("/proc/filesystems", "utf8").includes("overlay")) return "no overlayfs in this kernel";
  return undefined;
}

const run = (argv: string[], timeoutMs = 120_000): Exec => {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  return { code: r.exitCode ?? 128, out: r.stdout.toString(), err: r.stderr.toString() };
};

async function poll<T>(what: string, check: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await Bun.sleep(200);
  }
}

/** The host's enabled units (postgres, timers, …) masked, so the container boots only what the tests need. */
function maskHostUnits(root: string) {
  const dir = path.join(root, "etc/systemd/system");
  for (const wants of fs.readdirSync(dir).filter((d) => d.endsWith(".wants") || d.endsWith(".requires"))) {
    for (const unit of fs.readdirSync(path.join(dir, wants))) {
      const mask = path.join(dir, unit);
      fs.rmSync(mask, { force: true });
      fs.symlinkSync("/dev/null", mask);
    }
  }
}

/** Boots the container; { skip } with the reason when this machine cannot. */
export async function boot(opts: { bpf?: boolean } = {}): Promise<LiveSystemd | { skip: string }> {
  const why = cannotBoot();
  if (why) return { skip: why };
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-live-"));
  const up = path.join(base, "up"), root = path.join(base, "root");
  fs.mkdirSync(up); fs.mkdirSync(root);
  const mounted: string[] = [];
  const mount = (argv: string[], target: string) => {
    const r = run(["mount", ...argv, target]);
    if (r.code !== 0) throw new Error(`mount ${target}: ${r.err.trim()}`);
    mounted.unshift(target);
  };
  const unmount = () => { for (const m of mounted.splice(0)) run(["umount", "-l", m]); fs.rmSync(base, { recursive: true, force: true }); };
  try {
    mount(["-t", "tmpfs", "-o", "mode=0755", "tmpfs"], up);
    fs.mkdirSync(path.join(up, "upper")); fs.mkdirSync(path.join(up, "work"));
    mount(["-t", "overlay", "-o", `lowerdir=/,upperdir=${up}/upper,workdir=${up}/work`, "overlay"], root);
    // A fresh machine id: systemd refuses to boot a container whose id equals the host's.
    fs.writeFileSync(path.join(root, "etc/machine-id"), crypto.randomUUID().replace(/-/g, "") + "\n");
    maskHostUnits(root);
  } catch (e) {
    unmount();
    return { skip: `cannot prepare the container root: ${(e as Error).message}` };
  }

  const bpf = opts.bpf ?? true;
  let nspawn: ReturnType<typeof Bun.spawn>, pid = 0, logFile = path.join(up, "nspawn.log");
  const start = async () => {
    const fd = fs.openSync(logFile, "a");
    nspawn = Bun.spawn([NSPAWN, "-D", root, "--boot", "--register=no", "--keep-unit", "--private-network", "--console=passive",
      ...(bpf ? ["--capability=all", "--system-call-filter=bpf @privileged"] : [])], { stdin: "ignore", stdout: fd, stderr: fd });
    fs.closeSync(fd);
    const children = `/proc/${nspawn.pid}/task/${nspawn.pid}/children`;
    pid = await poll("the container's PID 1", () => {
      if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited ${nspawn.exitCode}: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
      try { return Number(fs.readFileSync(children, "utf8").trim().split(/\s+/)[0]) || undefined; } catch { return undefined; }
    }, 30_000);
    await poll("the container's systemd to finish booting", () => {
      const s = run(["nsenter", "-t", String(pid), "-a", "systemctl", "is-system-running"]).out.trim();
      return s === "running" || s === "degraded" ? s : undefined;
    }, 90_000);
    // The private network has only loopback; a real machine also has an address of its own, which the
    // egress check probes (a connect to it must be refused by the unit's IP firewall).
    const addr = run(["nsenter", "-t", String(pid), "-n", "ip", "addr", "add", `${OWN_ADDRESS}/32`, "dev", "lo"]);
    if (addr.code !== 0) throw new Error(`ip addr add ${OWN_ADDRESS}: ${addr.err.trim()}`);
  };
  const halt = async () => {
    if (nspawn.exitCode !== null) return;
    nspawn.kill("SIGTERM"); // nspawn turns this into an orderly poweroff of the container
    const done = await Promise.race([nspawn.exited, Bun.sleep(60_000).then(() => "timeout")]);
    if (done === "timeout") { nspawn.kill("SIGKILL"); await nspawn.exited; }
  };
  try {
    await start();
  } catch (e) {
    await halt().catch(() => {});
    unmount();
    return { skip: `systemd-nspawn could not boot: ${(e as Error).message}` };
  }

  const exec = (argv: string[], o: { env?: Record<string, string>; timeoutMs?: number } = {}) =>
    run(["nsenter", "-t", String(pid), "-a", "env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      ...Object.entries(o.env ?? {}).map(([k, v]) => `${k}=${v}`), ...argv], o.timeoutMs);
  return {
    root, get pid() { return pid; }, bpf,
    exec,
    sh: (script, timeoutMs) => exec(["/bin/sh", "-c", script], { timeoutMs }),
    poll,
    async reboot() { await halt(); await start(); },
    async stop() { await halt(); unmount(); },
  };
}

/** Prints the reason loudly: a skipped live suite must never look like a passing one. */
export function announceSkip(suite: string, why: string) {
  const bar = "!".repeat(100);
  console.warn(`\n${bar}\n!!! LIVE SYSTEMD TESTS SKIPPED (${suite}): ${why}\n!!! Nothing of the installed service was checked live on this machine.\n${bar}\n`);
}

/**
 * A live test file's container: booted once for the file (call it at the file's top level), stopped after its last
 * test. Undefined when this machine cannot boot one, the reason announced loudly: the file's suites then skip
 * (`describe.skipIf(!live)`). `suite` names the file in the announcement.
 */
export async function bootOrSkip(suite: string, opts: { bpf?: boolean } = {}): Promise<LiveSystemd | undefined> {
  const booted = await boot(opts);
  if ("skip" in booted) {
    announceSkip(suite, booted.skip);
    return undefined;
  }
  afterAll(async () => { await booted.stop(); });
  return booted;
}
