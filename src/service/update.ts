/**
 * `appliance update --binary NEW --sha256 HEX`: verify the checksum, stage the
 * new binary and have it write its own native libraries (native-sync.ts), keep the
 * current binary as the backup, swap atomically, restart, wait for /health,
 * and roll back by itself (saying so) if the new one does not come up.
 * Under --root there is no service manager: the health check starts the
 * installed binary directly on a free port instead.
 */
import fs from "node:fs";
import path from "node:path";
import { readManifest, sha256File } from "../integrity/manifest";
import { writeFileAtomic } from "../util/atomic-write";
import { copyHashed } from "../util/fs";
import { waitHealthy } from "./health-probe";
import { systemView, type Layout } from "./layout";
import { prepareNativeOf, syncNative } from "./native-sync";
import type { Runner } from "./platform";
import { startTimeoutSec } from "./units";

export interface UpdateOptions {
  layout: Layout;
  /** The installed server's /health (service/instance.ts). */
  url: string;
  /** Its config has tlsClientCa (service/health-probe.ts). */
  mtls?: boolean;
  run: Runner;
  out: (s: string) => void;
  healthTimeoutMs?: number;
}

/**
 * Copies the new binary next to the installed one (the only step that needs disk space), fsynced, and returns the
 * sha256 of the bytes copied (util/fs.ts copyHashed: what is checked is what runs and is installed). On any failure
 * (a full disk) the partial copy is removed and nothing else has changed.
 */
function stageCopy(from: string, to: string): { tmp: string; sha256: string } {
  const tmp = `${to}.update-tmp`;
  return { tmp, sha256: copyHashed(from, tmp, 0o755) };
}

/**
 * `to` becomes another name of `from`'s file (a hard link: no space needed), replacing `to` atomically. Where `to`
 * already is (an update rolled back leaves the binary and its backup one file), nothing is done: rename(2) between two
 * names of one file does nothing, and the temporary name was left beside the binary (live-service run). The temporary
 * names here are the ones uninstall removes (platform.ts binTemps).
 */
function linkOver(from: string, to: string) {
  if (sameFile(from, to)) return;
  const tmp = `${to}.link-tmp`;
  fs.rmSync(tmp, { force: true });
  fs.linkSync(from, tmp);
  fs.renameSync(tmp, to);
}

function sameFile(a: string, b: string): boolean {
  const x = fs.statSync(a, { throwIfNoEntry: false }), y = fs.statSync(b, { throwIfNoEntry: false });
  return !!x && !!y && x.dev === y.dev && x.ino === y.ino;
}

/** Records the installed binary's digest for verify (atomic, fsynced); hashes it unless the digest is already known. */
const record = async (l: Layout, digest?: string) =>
  writeFileAtomic(l.binDigest, `${digest ?? await sha256File(l.bin)}  ${systemView(l).bin}\n`, { mode: 0o644, owner: null });

/** Default wait for /health: as long as systemd's start timeout for the installed models (launchd has no readiness). */
function defaultTimeoutMs(l: Layout): number {
  const bytes = readManifest(l.modelsDir).reduce((sum, e) => sum + (fs.statSync(path.join(l.modelsDir, e.file), { throwIfNoEntry: false })?.size ?? 0), 0);
  return startTimeoutSec(bytes) * 1000;
}

async function restartAndCheck(o: UpdateOptions): Promise<{ ok: boolean; reason?: string }> {
  const l = o.layout;
  const timeout = o.healthTimeoutMs ?? defaultTimeoutMs(l);
  if (l.root === "/") {
    // systemd (Type=notify): restart returns once serve said READY=1 (models loaded), or fails at the start
    // timeout sized for the models, so there is no fixed wait to outlast. Then /health must answer at once.
    const argv = l.platform === "systemd" ? ["systemctl", "restart", "appliance.service"] : ["launchctl", "kickstart", "-k", "system/local.appliance.server"];
    // Every start counts against StartLimitBurst, meant for automatic restarts: an operator's update, its
    // rollback and a second try within minutes must not lock the unit out.
    if (l.platform === "systemd") o.run(["systemctl", "reset-failed", "appliance.service"]);
    const r = o.run(argv);
    if (r.code !== 0) return { ok: false, reason: `${argv.join(" ")} failed: ${r.out.trim().slice(-300)}` };
    return waitHealthy(o.url, l.platform === "systemd" ? 30_000 : timeout, { mtls: o.mtls });
  }
  return smokeStart(l, timeout, o.url, o.mtls);
}

/** Starts the installed binary against the rooted state on a free port and waits for its /health. */
async function smokeStart(l: Layout, timeoutMs: number, url: string, mtls?: boolean): Promise<{ ok: boolean; reason?: string }> {
  const proc = Bun.spawn([l.bin, "serve", "--config", l.configFile, "--state-dir", l.stateDir, "--port", "0"], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  try {
    const reader = proc.stdout.getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += new TextDecoder().decode(value);
      const port = /"msg":"listening"/.test(buf) && /"port":(\d+)/.exec(buf)?.[1];
      // The installed server's scheme and host: the smoke start reads the same config (tlsCert: HTTPS; a host of
      // ::1 was probed at 127.0.0.1 and every update under --root rolled back).
      const u = new URL(url);
      if (port) return await waitHealthy(`${u.protocol}//${u.hostname}:${port}/health`, 5000, { mtls }); // await: finally must not kill it first
    }
    const err = (await new Response(proc.stderr).text()).trim().split("\n").slice(-2).join(" | ");
    return { ok: false, reason: `the new binary exited with code ${await proc.exited} before serving${err ? `: ${err}` : ""}` };
  } finally {
    clearTimeout(timer);
    proc.kill("SIGTERM");
    await proc.exited;
  }
}

export async function update(o: UpdateOptions & { binary: string; sha256: string }): Promise<number> {
  const l = o.layout;
  if (!fs.existsSync(l.bin)) { o.out(`${l.bin} is not installed; run appliance install first`); return 1; }
  // Stage first: if the copy fails (a full disk), the installed binary, its backup and its digest are untouched.
  let staged: string, actual: string;
  try {
    ({ tmp: staged, sha256: actual } = stageCopy(o.binary, l.bin));
  } catch (e) {
    o.out(`update failed before changing anything: cannot copy ${o.binary} next to ${l.bin}: ${(e as Error).message}`);
    return 1;
  }
  // The checksum is of the bytes staged, in root's directory, which is what runs next and is installed: hashing
  // --binary by its path and then copying it by its path again let a file swapped in between run as root
  // (operations run: an unprivileged writer of the download directory, inside the ~140 ms of hashing).
  if (actual !== o.sha256.toLowerCase()) {
    fs.rmSync(staged, { force: true });
    o.out(`refusing: ${o.binary} has sha256 ${actual}, expected ${o.sha256}`);
    return 1;
  }
  // The new binary writes its own llama.cpp libraries (root-owned, the only ones the unit may map) before the
  // switch: a new native version would otherwise fail to start. One that cannot even do that is refused here,
  // with the installed binary still running.
  let prepared: ReturnType<typeof prepareNativeOf>;
  try {
    prepared = prepareNativeOf(staged, l, o.run);
  } catch (e) { // the runner itself failed: the staged copy goes, as on any refusal here
    prepared = { ok: false, reason: (e as Error).message };
  }
  if (!prepared.ok) {
    fs.rmSync(staged, { force: true });
    o.out(`update refused before changing anything: the new binary cannot install its native libraries (${prepared.reason}); the installed binary is unchanged`);
    return 1;
  }
  if (prepared.dir) o.out(`native libraries of the new binary: ${prepared.dir}`);
  try {
    linkOver(l.bin, l.binBackup); // the current binary, kept without copying it
    fs.renameSync(staged, l.bin); // atomic swap: the path always holds a whole binary
  } catch (e) {
    fs.rmSync(staged, { force: true });
    o.out(`update failed before the swap: ${(e as Error).message}; the installed binary is unchanged`);
    return 1;
  }
  o.out(`kept the current binary as ${l.binBackup}`);
  try {
    await record(l, actual); // checked against --sha256 above: no need to hash it again
  } catch (e) {
    linkOver(l.binBackup, l.bin);
    o.out(`update failed: cannot record the new digest in ${l.binDigest} (${(e as Error).message}); put the previous binary back`);
    return 1;
  }
  o.out(`installed ${o.binary} as ${l.bin} (sha256 ${actual}); restarting`);
  const health = await restartAndCheck(o);
  if (health.ok) {
    o.out("update complete: /health answers");
    syncNative(l, o.run, o.out); // keeps the new and the previous binary's libraries, removes older ones
    return 0;
  }
  o.out(`the new binary did not come up (${health.reason}); rolling back`);
  linkOver(l.binBackup, l.bin);
  await record(l);
  const back = await restartAndCheck(o);
  o.out(back.ok ? `rolled back to the previous binary; it is healthy` : `rolled back, but the previous binary is not healthy either: ${back.reason}`);
  syncNative(l, o.run, o.out); // the failed binary's libraries go
  return 1;
}

export async function rollback(o: UpdateOptions): Promise<number> {
  const l = o.layout;
  if (!fs.existsSync(l.binBackup)) { o.out(`no previous binary at ${l.binBackup}`); return 1; }
  // After an update that was rolled back, both names are the one binary that runs: there is nothing to go back to
  // (this said "swapped back" and left two temporary names beside the binary; live-service run).
  if (sameFile(l.bin, l.binBackup)) { o.out(`${l.binBackup} is the installed binary itself (the last update was rolled back): nothing to go back to`); return 1; }
  // Its libraries are normally still there (update keeps them); this rewrites them if they were removed.
  const prepared = prepareNativeOf(l.binBackup, l, o.run);
  if (!prepared.ok) o.out(`the previous binary did not install its native libraries (${prepared.reason}); trying it anyway`);
  // Swap the two names by links and renames: no copy, so it also works on a full disk.
  const current = path.join(path.dirname(l.bin), ".appliance.rollback-tmp");
  fs.rmSync(current, { force: true });
  fs.linkSync(l.bin, current);
  linkOver(l.binBackup, l.bin);
  fs.renameSync(current, l.binBackup);
  await record(l);
  o.out(`swapped back to the previous binary (the replaced one is now ${l.binBackup}); restarting`);
  const health = await restartAndCheck(o);
  o.out(health.ok ? "rollback complete: /health answers" : `rollback done but not healthy: ${health.reason}`);
  syncNative(l, o.run, o.out);
  return health.ok ? 0 : 1;
}
