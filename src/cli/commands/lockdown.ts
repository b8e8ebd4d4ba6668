/**
 * appliance lockdown [--off] [--reason TEXT] — containment: the running server stops serving every
 * route but /health and /metrics (503 `lockdown`) from its next request on, without a restart, until
 * `appliance lockdown --off`. It acts on the installed instance's state dir (or --state-dir).
 */
import fs from "node:fs";
import { lockdownFile, type LockdownRecord } from "../../guards/lockdown";
import { writeFileAtomic } from "../../util/atomic-write";
import { EXIT, flaggedInstance, parseOwn, configFlagOptions, type Command } from "../command";

export const lockdown: Command = {
  name: "lockdown",
  summary: "Stop serving inference (only /health and /metrics answer) until 'lockdown --off'",
  usage: "appliance lockdown [--off] [--reason TEXT] [--state-dir DIR] [--config FILE] [--root DIR] [--platform systemd|launchd]",
  async run(argv) {
    const { values } = parseOwn(argv, { ...configFlagOptions(), off: { type: "boolean" }, reason: { type: "string" },
      root: { type: "string" }, platform: { type: "string" } });
    const inst = flaggedInstance(values);
    const file = lockdownFile(inst.config.stateDir);
    if (values.off) {
      if (!fs.existsSync(file)) { console.log(`not in lockdown (${file} does not exist)`); return EXIT.OK; }
      fs.rmSync(file, { recursive: true }); // whatever holds the path (a directory put there by hand holds the lockdown too)
      console.log(`lockdown lifted: ${file} removed; the server serves again from its next request`);
      return EXIT.OK;
    }
    if (!fs.existsSync(inst.config.stateDir)) { console.error(`appliance lockdown: no state dir at ${inst.config.stateDir}`); return EXIT.FAIL; }
    // Already on: the record of when, by whom and why is incident evidence; a second lockdown rewrote it (reason null).
    if (fs.existsSync(file)) {
      console.log(`already in lockdown since ${recordedSince(file)}: ${file} kept as it is; lift it with: appliance lockdown --off`);
      return EXIT.OK;
    }
    const record: LockdownRecord = { since: new Date().toISOString(), by: { uid: process.getuid?.() ?? null, user: process.env.SUDO_USER ?? process.env.USER ?? null },
      reason: (values.reason as string | undefined) ?? null };
    // Readable by the service account (it only needs to see that the file exists); owned like the state dir.
    writeFileAtomic(file, JSON.stringify(record) + "\n", { mode: 0o644 });
    console.log(`lockdown on: ${file} written; every route but /health and /metrics answers 503 'lockdown' until: appliance lockdown --off`);
    return EXIT.OK;
  },
};

/** When the lockdown in `file` began, as its record says (a file put there by hand may hold anything). */
function recordedSince(file: string): string {
  try { return String((JSON.parse(fs.readFileSync(file, "utf8")) as Partial<LockdownRecord>).since ?? "an unrecorded time"); } catch { return "an unrecorded time"; }
}
