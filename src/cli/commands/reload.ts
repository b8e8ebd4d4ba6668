/**
 * appliance reload --pid PID (internal): the unit's ExecReload. Sends SIGHUP (re-read the keys file)
 * to the running server. The unit may execute nothing but the appliance binary (NoExecPaths=/),
 * and systemd 252 has no ReloadSignal=, so the binary signals itself instead of /bin/kill.
 */
import fs from "node:fs";
import { basename } from "node:path";
import { EXIT, parseOwn, UsageError, type Command } from "../command";

/**
 * A process's argv from /proc (Linux); undefined where it cannot be asked: no /proc (macOS: launchd has no reload), or
 * a process that exists but /proc hides (the unit's ProtectProc=invisible hides MAINPID from ExecReload's process).
 */
function runningArgv(pid: number): string[] | undefined {
  if (!fs.existsSync("/proc/self/cmdline")) return undefined;
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0"); } catch {
    try { process.kill(pid, 0); return undefined; } catch { return ["(no such process)"]; }
  }
}

/**
 * Whether process `pid` runs this program: the same file (device and inode) where /proc lets us look, which it may not
 * for another process (inside the unit's sandbox, reading /proc/PID/exe needs ptrace access: the live reload failed);
 * then its argv[0] names a file of this program's name.
 */
function sameProgram(pid: number, argv0: string): boolean {
  try {
    const theirs = fs.statSync(`/proc/${pid}/exe`), ours = fs.statSync("/proc/self/exe"), path = fs.statSync(process.execPath);
    return theirs.dev === ours.dev && theirs.ino === ours.ino || theirs.dev === path.dev && theirs.ino === path.ino;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return (code === "EACCES" || code === "EPERM") && basename(argv0) === basename(process.execPath);
  }
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
    if (argvOf && (argvOf[1] !== "serve" || !sameProgram(pid, argvOf[0]!))) {
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
