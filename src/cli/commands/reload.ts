/**
 * appliance reload --pid PID (internal): the unit's ExecReload. Sends SIGHUP (re-read the keys file)
 * to the running server. The unit may execute nothing but the appliance binary (NoExecPaths=/),
 * and systemd 252 has no ReloadSignal=, so the binary signals itself instead of /bin/kill.
 */
import fs from "node:fs";
import { EXIT, parseOwn, UsageError, type Command } from "../command";

/** A process's argv from /proc (Linux); undefined where there is no /proc to ask (macOS: launchd has no reload). */
function runningArgv(pid: number): string[] | undefined {
  if (!fs.existsSync("/proc/self/cmdline")) return undefined;
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0"); } catch { return ["(no such process)"]; }
}

/** Whether process `pid` runs the file this process runs (same device and inode; an updated path still names ours). */
function sameProgram(pid: number): boolean {
  try {
    const theirs = fs.statSync(`/proc/${pid}/exe`), ours = fs.statSync("/proc/self/exe"), path = fs.statSync(process.execPath);
    return theirs.dev === ours.dev && theirs.ino === ours.ino || theirs.dev === path.dev && theirs.ino === path.ino;
  } catch { return false; }
}

export const reload: Command = {
  name: "reload",
  summary: "Internal: ask the running server to re-read its keys (SIGHUP)",
  usage: "appliance reload --pid PID",
  hidden: true,
  async run(argv) {
    const { values } = parseOwn(argv, { pid: { type: "string" } });
    const pid = Number(values.pid);
    if (!Number.isInteger(pid) || pid <= 1) throw new UsageError("reload needs --pid PID (the server's process id)");
    // SIGHUP ends most processes: signal only a serve (the unit passes $MAINPID; a mistyped pid killed whatever it named).
    const argvOf = runningArgv(pid);
    // And running this program: `ollama serve` or `tail serve` matched argv alone (a fix-attack run).
    if (argvOf && (argvOf[1] !== "serve" || !sameProgram(pid))) {
      console.error(`appliance reload: process ${pid} is not an appliance server (${argvOf.slice(0, 2).join(" ")}); nothing signalled`);
      return EXIT.FAIL;
    }
    try {
      process.kill(pid, "SIGHUP");
    } catch (e) {
      console.error(`appliance reload: cannot signal ${pid}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      return EXIT.FAIL;
    }
    return EXIT.OK;
  },
};
