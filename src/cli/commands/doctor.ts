/** appliance doctor [--json] — the platform security baseline; exit 0 all good, 1 a check failed. */
import { runDoctor } from "../../integrity/doctor";
import { exitCodeFor, formatTable } from "../../integrity/report";
import { parseOwn, type Command } from "../command";

export const doctor: Command = {
  name: "doctor",
  summary: "Check the machine's security baseline (disk encryption, MAC, firewall, updates / FileVault, SIP, Gatekeeper)",
  usage: "appliance doctor [--json]",
  async run(argv) {
    const { values } = parseOwn(argv, { json: { type: "boolean" } });
    const checks = runDoctor();
    if (values.json) console.log(JSON.stringify({ ok: exitCodeFor(checks) === 0, checks }, null, 2));
    else console.log(formatTable("appliance doctor", checks));
    return exitCodeFor(checks);
  },
};
