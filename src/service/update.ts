/**
 * `appliance update --binary NEW --sha256 HEX`: verify the checksum, keep the
 * current binary as the backup, swap atomically, restart, wait for /health,
 * and roll back by itself (saying so) if the new one does not come up.
 * Under --root there is no service manager: the health check starts the
 * installed binary directly on a free port instead.
 */
import fs from "node:fs";
import path from "node:path";
import { sha256File } from "../integrity/manifest";
import { waitHealthy } from "./installer";
import { systemView, type Layout } from "./layout";
import type { Runner } from "./platform";

export interface UpdateOptions {
  layout: Layout;
  /** The installed server's /health (service/instance.ts). */
  url: string;
  run: Runner;
  out: (s: string) => void;
  healthTimeoutMs?: number;
}

function place(from: string, to: string) {
  const tmp = `${to}.update-tmp`;
  fs.copyFileSync(from, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, to); // atomic swap: the path always holds a whole binary
}

/** Records the installed binary's digest for verify; hashes it unless the digest is already known. */
const record = async (l: Layout, digest?: string) =>
  fs.writeFileSync(l.binDigest, `${digest ?? await sha256File(l.bin)}  ${systemView(l).bin}\n`, { mode: 0o644 });

async function restartAndCheck(o: UpdateOptions): Promise<{ ok: boolean; reason?: string }> {
  const l = o.layout;
  const timeout = o.healthTimeoutMs ?? 30_000;
  if (l.root === "/") {
    const argv = l.platform === "systemd" ? ["systemctl", "restart", "appliance.service"] : ["launchctl", "kickstart", "-k", "system/local.appliance.server"];
    const r = o.run(argv);
    if (r.code !== 0) return { ok: false, reason: `${argv.join(" ")} failed: ${r.out.trim().slice(-300)}` };
    return waitHealthy(o.url, timeout);
  }
  return smokeStart(l, timeout);
}

/** Starts the installed binary against the rooted state on a free port and waits for its /health. */
async function smokeStart(l: Layout, timeoutMs: number): Promise<{ ok: boolean; reason?: string }> {
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
      if (port) return await waitHealthy(`http://127.0.0.1:${port}/health`, 5000); // await: finally must not kill it first
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
  const actual = await sha256File(o.binary);
  if (actual !== o.sha256.toLowerCase()) {
    o.out(`refusing: ${o.binary} has sha256 ${actual}, expected ${o.sha256}`);
    return 1;
  }
  if (!fs.existsSync(l.bin)) { o.out(`${l.bin} is not installed; run appliance install first`); return 1; }
  place(l.bin, l.binBackup);
  o.out(`kept the current binary as ${l.binBackup}`);
  place(o.binary, l.bin);
  await record(l, actual); // checked against --sha256 above: no need to hash it again
  o.out(`installed ${o.binary} as ${l.bin} (sha256 ${actual}); restarting`);
  const health = await restartAndCheck(o);
  if (health.ok) { o.out("update complete: /health answers"); return 0; }
  o.out(`the new binary did not come up (${health.reason}); rolling back`);
  place(l.binBackup, l.bin);
  await record(l);
  const back = await restartAndCheck(o);
  o.out(back.ok ? `rolled back to the previous binary; it is healthy` : `rolled back, but the previous binary is not healthy either: ${back.reason}`);
  return 1;
}

export async function rollback(o: UpdateOptions): Promise<number> {
  const l = o.layout;
  if (!fs.existsSync(l.binBackup)) { o.out(`no previous binary at ${l.binBackup}`); return 1; }
  const current = path.join(path.dirname(l.bin), ".appliance.rollback-tmp");
  fs.copyFileSync(l.bin, current);
  place(l.binBackup, l.bin);
  place(current, l.binBackup);
  fs.rmSync(current, { force: true });
  await record(l);
  o.out(`swapped back to the previous binary (the replaced one is now ${l.binBackup}); restarting`);
  const health = await restartAndCheck(o);
  o.out(health.ok ? "rollback complete: /health answers" : `rollback done but not healthy: ${health.reason}`);
  return health.ok ? 0 : 1;
}
