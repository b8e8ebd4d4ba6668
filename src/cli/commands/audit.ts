/** appliance audit verify [--file F] [--state-dir DIR] [--checkpoints FILE]... [--journal] */
import fs from "node:fs";
import path from "node:path";
import { loadConfig } from "../../config/load";
import type { Checkpoint } from "../../log/audit";
import { parseCheckpoints, verifyAudit } from "../../log/audit-verify";
import { EXIT, parseOwn, UsageError, type Command } from "../command";

/** The service's own log lines in the journal, where it writes a copy of every checkpoint. */
function journalCheckpoints(): Checkpoint[] {
  const r = Bun.spawnSync(["journalctl", "-u", "appliance.service", "-o", "cat", "--no-pager"], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`journalctl failed: ${r.stderr.toString().trim().slice(0, 300)}`);
  return parseCheckpoints(r.stdout.toString());
}

export const audit: Command = {
  name: "audit",
  summary: "Verify the audit log: MACs, hash chain across rotated files, checkpoints",
  usage: "appliance audit verify [--file F] [--state-dir DIR] [--checkpoints FILE]... [--journal]",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== "verify") throw new UsageError(`unknown audit subcommand '${sub ?? ""}'`);
    const { values } = parseOwn(rest, {
      file: { type: "string" }, "state-dir": { type: "string" }, checkpoints: { type: "string", multiple: true }, journal: { type: "boolean" },
    });
    const file = (values.file as string | undefined)
      ?? path.join((values["state-dir"] as string | undefined) ?? loadConfig().stateDir, "audit.jsonl");
    let r;
    try {
      const extra = (values.checkpoints as string[] | undefined ?? []).flatMap((f) => parseCheckpoints(fs.readFileSync(f, "utf8")));
      if (values.journal) extra.push(...journalCheckpoints());
      r = verifyAudit(file, { checkpoints: extra });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      console.error(`cannot verify ${file}: ${err.code === "EACCES" ? `permission denied on ${err.path ?? "a file"} (run as root or the service account)` : err.code ?? err.message}`);
      return EXIT.USAGE;
    }
    if (!r.ok) {
      console.log(`${file}: BROKEN at ${r.file} line ${r.line}: ${r.reason} (${r.records} records before it verify)`);
      return EXIT.FAIL;
    }
    console.log(`${file}: ok, ${r.records} records (seq ${r.firstSeq}..${r.lastSeq} in ${r.files.length} file(s)), ` +
      `${r.checkpoints} checkpoint(s) matched${r.tornTail ? "; an unfinished last line was ignored" : ""}` +
      (r.firstSeq > 1 ? `; records before ${r.firstSeq} were rotated away` : ""));
    return EXIT.OK;
  },
};
