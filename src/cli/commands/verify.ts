/**
 * appliance verify [--json] [--quiet] [--skip-models] [--pre-start] [--root DIR] [--platform systemd|launchd] — exit 0 all good, 1 a
 * check failed, 2 could not run. --pre-start (the unit's ExecStartPre): a config that does not load is left to serve,
 * which refuses it with exit 2, the status the unit does not restart on (only the main process's status counts).
 */
import { ConfigError } from "../../config/load";
import type { Config } from "../../config/schema";
import { alert, runVerify } from "../../integrity/verify";
import { exitCodeFor, formatTable } from "../../integrity/report";
import { recordVerifyStatus, verifyStatusDir } from "../../integrity/verify-status";
import type { Layout } from "../../service/layout";
import { EXIT, flaggedInstance, parseOwn, configFlagOptions, UsageError, type Command } from "../command";

/** The installed layout (if any) and the config it runs with, from the one instance reader; under --root every path is re-rooted. */
export function installedContext(values: Record<string, unknown>): { config: Readonly<Config>; installed?: Layout } {
  const inst = flaggedInstance(values);
  return { config: inst.config, installed: inst.installed ? inst.layout : undefined };
}

export const verify: Command = {
  name: "verify",
  summary: "Check models, binary, key files, directories, account, native libraries, listen address and environment",
  usage: "appliance verify [--json] [--quiet] [--skip-models] [--pre-start] [--root DIR] [--platform systemd|launchd] [--state-dir DIR] [--config FILE]",
  async run(argv) {
    const { values } = parseOwn(argv, { ...configFlagOptions(), json: { type: "boolean" }, quiet: { type: "boolean" }, "skip-models": { type: "boolean" },
      "pre-start": { type: "boolean" }, root: { type: "string" }, platform: { type: "string" } });
    let ctx;
    try {
      ctx = installedContext(values);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      if (values["pre-start"] && e instanceof ConfigError) {
        console.error(`appliance verify: the config does not load; serve will refuse it (exit 2, not restarted): ${e.message}`);
        return EXIT.OK;
      }
      console.error(`appliance verify: cannot run: ${(e as Error).message}`);
      return EXIT.USAGE;
    }
    const checks = await runVerify({ ...ctx, skipModels: !!values["skip-models"], preStart: !!values["pre-start"],
      serviceEnv: process.env.APPLIANCE_SERVICE === "1" ? process.env : undefined });
    alert(checks, ctx.installed?.logDir);
    // A full check (not the pre-start one, which leaves the models to serve) is recorded for /metrics.
    if (!values["skip-models"]) {
      const dir = verifyStatusDir(ctx.config.stateDir, ctx.installed);
      try { recordVerifyStatus(dir, checks); } catch (e) {
        const err = e as NodeJS.ErrnoException; // its path is a temp file of the atomic write: name the dir and the code
        console.error(`appliance verify: could not record the result in ${dir}: ${err.code === "ENOENT" ? "no such directory" : err.code ?? err.message}`);
      }
    }
    const code = exitCodeFor(checks);
    if (values.json) console.log(JSON.stringify({ ok: code === 0, checks }, null, 2));
    else if (!values.quiet || code !== 0) console.log(formatTable("appliance verify", values.quiet ? checks.filter((c) => c.status === "fail") : checks));
    // Quiet still says what the operator allowed to go on without (egressLock "warn"): on every start, in the journal.
    if (values.quiet && !values.json) for (const c of checks) if (c.detail.startsWith("WARNING")) console.error(`${c.name}: ${c.detail}`);
    return code;
  },
};
