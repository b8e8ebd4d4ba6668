/** appliance verify [--json] [--quiet] [--root DIR] [--platform systemd|launchd] — exit 0 all good, 1 a check failed, 2 could not run. */
import fs from "node:fs";
import path from "node:path";
import { loadConfig, parseConfig } from "../../config/load";
import type { Config } from "../../config/schema";
import { alert, runVerify } from "../../integrity/verify";
import { exitCodeFor, formatTable } from "../../integrity/report";
import { layout, type Layout } from "../../service/layout";
import { EXIT, flagsToConfig, parseOwn, configFlagOptions, platformFlag, UsageError, type Command } from "../command";

/** The installed layout (if any) and the config it runs with; under --root every path is re-rooted. */
export function installedContext(values: Record<string, unknown>): { config: Readonly<Config>; installed?: Layout } {
  const root = path.resolve((values.root as string | undefined) ?? "/");
  const l = layout(platformFlag(values), root);
  const installed = fs.existsSync(l.binDigest) ? l : undefined;
  const file = (values.config as string | undefined) ?? process.env.APPLIANCE_CONFIG ?? (installed && fs.existsSync(l.configFile) ? l.configFile : undefined);
  let config = loadConfig({ file, flags: flagsToConfig(values) });
  if (installed && root !== "/") {
    config = parseConfig({ ...config, stateDir: path.join(root, config.stateDir), modelsDir: config.modelsDir ? path.join(root, config.modelsDir) : "" });
  }
  return { config, installed };
}

export const verify: Command = {
  name: "verify",
  summary: "Check models, binary, key files, directories, account, listen address and environment",
  usage: "appliance verify [--json] [--quiet] [--root DIR] [--platform systemd|launchd] [--state-dir DIR] [--config FILE]",
  async run(argv) {
    const { values } = parseOwn(argv, { ...configFlagOptions(), json: { type: "boolean" }, quiet: { type: "boolean" },
      root: { type: "string" }, platform: { type: "string" } });
    let ctx;
    try {
      ctx = installedContext(values);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      console.error(`appliance verify: cannot run: ${(e as Error).message}`);
      return EXIT.USAGE;
    }
    const checks = await runVerify({ ...ctx, serviceEnv: process.env.APPLIANCE_SERVICE === "1" ? process.env : undefined });
    alert(checks, ctx.installed?.logDir);
    const code = exitCodeFor(checks);
    if (values.json) console.log(JSON.stringify({ ok: code === 0, checks }, null, 2));
    else if (!values.quiet || code !== 0) console.log(formatTable("appliance verify", values.quiet ? checks.filter((c) => c.status === "fail") : checks));
    return code;
  },
};
