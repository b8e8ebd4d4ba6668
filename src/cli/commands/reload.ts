/**
 * appliance reload --pid PID (internal): the unit's ExecReload. Sends SIGHUP (re-read the keys file)
 * to the running server. The unit may execute nothing but the appliance binary (NoExecPaths=/),
 * and systemd 252 has no ReloadSignal=, so the binary signals itself instead of /bin/kill.
 */
import { EXIT, parseOwn, UsageError, type Command } from "../command";

export const reload: Command = {
  name: "reload",
  summary: "Internal: ask the running server to re-read its keys (SIGHUP)",
  usage: "appliance reload --pid PID",
  hidden: true,
  async run(argv) {
    const { values } = parseOwn(argv, { pid: { type: "string" } });
    const pid = Number(values.pid);
    if (!Number.isInteger(pid) || pid <= 1) throw new UsageError("reload needs --pid PID (the server's process id)");
    try {
      process.kill(pid, "SIGHUP");
    } catch (e) {
      console.error(`appliance reload: cannot signal ${pid}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      return EXIT.FAIL;
    }
    return EXIT.OK;
  },
};
