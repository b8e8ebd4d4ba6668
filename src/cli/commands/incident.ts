/**
 * appliance incident snapshot [--out FILE] — the runbook's evidence step: recent logs, the audit tail
 * and its chain verification, redacted config, key metadata, verify and doctor results, the server's
 * memory/thread stats, packed into one tar.gz (0600) plus FILE.sha256 for chain of custody.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { healthUrl } from "../../service/instance";
import { sha256File } from "../../util/sha256";
import { EXIT, flaggedInstance, parseOwn, configFlagOptions, UsageError, unknownSubcommand, type Command } from "../command";
import { collectSnapshot } from "../incident-snapshot";

const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");

/** systemd's MainPID of the installed service, if it runs. */
function servicePid(): number | undefined {
  try {
    const r = Bun.spawnSync(["systemctl", "show", "-p", "MainPID", "--value", "appliance.service"], { stdout: "pipe", stderr: "ignore" });
    const pid = Number(r.stdout.toString().trim());
    return r.exitCode === 0 && pid > 0 ? pid : undefined;
  } catch { return undefined; }
}

const positiveInt = (v: unknown, flag: string, def: number) => {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer`);
  return n;
};

export const incident: Command = {
  name: "incident",
  summary: "Incident tooling: snapshot logs, audit chain, redacted config, key metadata, checks and process stats into one archive",
  usage: "appliance incident snapshot [--out FILE] [--pid N] [--log-lines N] [--audit-lines N] [--root DIR] [--platform systemd|launchd] [--state-dir DIR] [--config FILE] [--port N]",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== "snapshot") throw unknownSubcommand("incident", sub, ["snapshot"]);
    const { values } = parseOwn(rest, { ...configFlagOptions(), out: { type: "string" }, pid: { type: "string" }, "log-lines": { type: "string" },
      "audit-lines": { type: "string" }, root: { type: "string" }, platform: { type: "string" } });
    const inst = flaggedInstance(values);
    const installed = inst.installed ? inst.layout : undefined;
    const pid = values.pid !== undefined ? positiveInt(values.pid, "--pid", 0) : installed?.root === "/" ? servicePid() : undefined;
    const name = `appliance-incident-${stamp()}`;
    if (values.out !== undefined && !String(values.out).trim()) throw new UsageError("--out needs a file name (it was empty)");
    const out = path.resolve((values.out as string | undefined) ?? `${name}.tar.gz`);
    if (fs.existsSync(out)) throw new UsageError(`${out} exists; evidence is never overwritten`);
    // Said before collecting, not as a raw ENOENT after it (ops run).
    if (!fs.statSync(path.dirname(out), { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--out ${out}: ${path.dirname(out)} is not a directory`);
    // A mistyped --state-dir made a near-empty archive and exit 0 (lockdown refuses it the same way).
    if (!fs.existsSync(inst.config.stateDir)) { console.error(`appliance incident: no state dir at ${inst.config.stateDir}`); return EXIT.FAIL; }

    const work = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-incident-"));
    const folder = path.join(work, name);
    fs.mkdirSync(folder, { mode: 0o700 });
    try {
      const { files, notes, auditOk } = await collectSnapshot(folder, {
        config: inst.config, configFile: inst.configFile, installed, pid, healthUrl: healthUrl(inst.config),
        logLines: positiveInt(values["log-lines"], "--log-lines", 2000), auditLines: positiveInt(values["audit-lines"], "--audit-lines", 500),
      });
      fs.writeFileSync(path.join(folder, "manifest.json"), JSON.stringify({ created: new Date().toISOString(), host: os.hostname(), files, notes }, null, 2) + "\n", { mode: 0o600 });
      // Written as 0600 from the start: the archive holds audit records and host facts.
      const fd = fs.openSync(out, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      fs.closeSync(fd);
      const tar = Bun.spawnSync(["tar", "-czf", out, "-C", work, name], { stdout: "pipe", stderr: "pipe" });
      if (tar.exitCode !== 0) {
        fs.rmSync(out, { force: true });
        console.error(`appliance incident: tar failed: ${tar.stderr.toString().trim()}`);
        return EXIT.FAIL;
      }
      const digest = await sha256File(out);
      fs.writeFileSync(`${out}.sha256`, `${digest}  ${path.basename(out)}\n`, { mode: 0o600 });
      for (const n of notes) console.log(`not collected: ${n}`);
      if (auditOk === false) console.log("WARNING: the audit chain does NOT verify (see audit-verify.json in the archive)");
      console.log(`snapshot: ${out} (${Object.keys(files).length + 1} files)\nsha256 ${digest}  (also in ${out}.sha256)`);
      return EXIT.OK;
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  },
};
