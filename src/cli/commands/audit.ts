/**
 * appliance audit verify [--file F] [--state-dir DIR] [--checkpoints FILE]... [--journal]
 * appliance audit anchor --to FILE [--file F] [--state-dir DIR] [--full] [--alert-dir DIR]   (root's anchor runs: see log/audit-anchor.ts)
 */
import fs from "node:fs";
import path from "node:path";
import type { Checkpoint } from "../../log/audit";
import { anchorAudit } from "../../log/audit-anchor";
import { parseCheckpoints, verifyAudit, type VerifyResult } from "../../log/audit-verify";
import { alert } from "../../integrity/verify";
import { AUDIT_CHAIN_MARK_ID } from "../../service/platform";
import { EXIT, parseOwn, stateDirFlag, UsageError, unknownSubcommand, type Command } from "../command";

/**
 * The service's own log lines in the journal, where it writes a copy of every checkpoint: those since the current
 * chain began. `uninstall --purge` ends a chain with a mark root writes to the journal (the service account cannot
 * write one as root); the checkpoints before the newest mark are an earlier chain's, made with another audit key,
 * which read as forged ones otherwise.
 */
function journalCheckpoints(): Checkpoint[] {
  const mark = Bun.spawnSync(["journalctl", "-t", AUDIT_CHAIN_MARK_ID, "_UID=0", "-o", "json", "-n", "1", "--no-pager"], { stdout: "pipe", stderr: "pipe" });
  let cursor: string | undefined;
  try { cursor = (JSON.parse(mark.stdout.toString().trim().split("\n").at(-1) || "null") as { __CURSOR?: string } | null)?.__CURSOR; } catch { /* no mark */ }
  const r = Bun.spawnSync(["journalctl", "-u", "appliance.service", "-o", "cat", "--no-pager", ...(cursor ? [`--after-cursor=${cursor}`] : [])], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`journalctl failed: ${r.stderr.toString().trim().slice(0, 300)}`);
  return parseCheckpoints(r.stdout.toString());
}

export const audit: Command = {
  name: "audit",
  summary: "Verify the audit log (MACs, hash chain across rotated files, checkpoints); anchor it in a file the service cannot write",
  usage: "appliance audit verify [--file F] [--state-dir DIR | --config FILE] [--checkpoints FILE]... [--journal] | audit anchor --to FILE [--file F] [--state-dir DIR | --config FILE] [--full] [--alert-dir DIR]",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== "verify" && sub !== "anchor") throw unknownSubcommand("audit", sub, ["verify", "anchor"]);
    // Each subcommand its own flags: `audit verify --to F` (meant: anchor) verified, said ok and anchored nothing.
    const { values } = parseOwn(rest, { file: { type: "string" }, "state-dir": { type: "string" }, config: { type: "string" },
      ...(sub === "verify" ? { checkpoints: { type: "string", multiple: true }, journal: { type: "boolean" } }
        : { to: { type: "string" }, full: { type: "boolean" }, "alert-dir": { type: "string" } }) });
    const file = (values.file as string | undefined)
      ?? path.join(stateDirFlag(values), "audit.jsonl");
    let r: VerifyResult;
    let journal: Checkpoint[] | undefined;
    try {
      if (sub === "anchor") {
        if (!values.to) throw new UsageError("audit anchor needs --to FILE (a file the service account cannot write)");
        const a = anchorAudit(file, values.to as string, { full: values.full === true });
        if (a.nothing) { console.log(`${file}: no audit log yet, nothing to anchor`); return EXIT.OK; }
        r = a.verify;
        const how = a.incremental ? `${r.records} new record(s) verified since the last anchor` : `whole log verified, ${r.records} records`;
        if (r.ok) console.log(a.anchored ? `${file}: anchored record ${a.anchored.seq} in ${values.to} (${how})` : `${file}: already anchored at record ${r.lastSeq}`);
        if (r.ok) return EXIT.OK;
        // Root's anchor run is the one that sees a rewrite first: alert as the daily check does (syslog, and
        // verify-alerts.log in --alert-dir, the units' log dir).
        alert([{ name: "audit anchor", status: "fail", detail: `${r.file} line ${r.line}: ${r.reason}` }], values["alert-dir"] as string | undefined);
      } else {
        const extra = (values.checkpoints as string[] | undefined ?? []).flatMap((f) => parseCheckpoints(fs.readFileSync(f, "utf8")));
        journal = values.journal ? journalCheckpoints() : undefined;
        r = verifyAudit(file, { checkpoints: extra, ...(journal && { journal }) });
      }
    } catch (e) {
      if (e instanceof UsageError) throw e;
      const err = e as NodeJS.ErrnoException;
      // The file at fault by name: a missing --checkpoints FILE or an --to DIR read as the audit log's ENOENT/EISDIR.
      const other = err.path && path.resolve(err.path) !== path.resolve(file) ? `${err.path}: ` : "";
      console.error(`cannot verify ${file}: ${err.code === "EACCES" ? `permission denied on ${err.path ?? "a file"} (run as root or the service account)` : `${other}${err.code ?? err.message}`}`);
      return EXIT.USAGE;
    }
    if (!r.ok) {
      console.log(`${file}: BROKEN at ${r.file}${r.line ? ` line ${r.line}` : ""}: ${r.reason} (${r.records} records before it verify)`);
      return EXIT.FAIL;
    }
    // --journal is asked for because the journal's copy is what a rewrite of the state dir cannot reach: none there
    // while the chain has checkpoints means that defence is absent, not that all is well.
    // Whatever the state dir says: whoever rewrites it can delete audit.checkpoints too (fix-attack run).
    if (journal && !journal.length && (r.checkpoints > 0 || r.records > 0)) {
      console.log(`${file}: records verify, but the journal (journalctl -u appliance.service) holds no checkpoint of this chain: ` +
        "its copy, the one a rewrite of the state dir cannot reach, is missing (not run by systemd here, no access to its journal: run as root, " +
        "or a chain too new for its first checkpoint: one is written within a minute of a record)");
      return EXIT.FAIL;
    }
    console.log(`${file}: ok, ${r.records} records (seq ${r.firstSeq}..${r.lastSeq} in ${r.files.length} file(s)), ` +
      `${r.checkpoints} checkpoint(s) matched${journal ? ` (${journal.length} of them from the journal)` : ""}${r.tornTail ? "; an unfinished last line was ignored" : ""}` +
      (r.firstSeq > 1 ? `; records before ${r.firstSeq} were rotated away` : ""));
    return EXIT.OK;
  },
};
