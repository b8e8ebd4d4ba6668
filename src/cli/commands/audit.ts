/** appliance audit verify [--file F] */
import path from "node:path";
import { loadConfig } from "../../config/load";
import { verifyAudit } from "../../log/audit";
import { EXIT, parseOwn, UsageError, type Command } from "../command";

export const audit: Command = {
  name: "audit",
  summary: "Verify the hash chain of the audit log",
  usage: "appliance audit verify [--file F] [--state-dir DIR]",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== "verify") throw new UsageError(`unknown audit subcommand '${sub ?? ""}'`);
    const { values } = parseOwn(rest, { file: { type: "string" }, "state-dir": { type: "string" } });
    const file = (values.file as string | undefined)
      ?? path.join((values["state-dir"] as string | undefined) ?? loadConfig().stateDir, "audit.jsonl");
    let r;
    try { r = verifyAudit(file); } catch (e) {
      console.error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      return EXIT.USAGE;
    }
    if (!r.ok) {
      console.log(`${file}: BROKEN at line ${r.line}: ${r.reason} (${r.records} records before it verify)`);
      return EXIT.FAIL;
    }
    console.log(`${file}: ok, ${r.records} records${r.tornTail ? " (an unfinished last line was ignored)" : ""}`);
    return EXIT.OK;
  },
};
