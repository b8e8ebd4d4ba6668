/** appliance config print | validate FILE */
import { ConfigError, loadConfig, redactConfig } from "../../config/load";
import type { Config } from "../../config/schema";
import { refuseClash } from "../../gateway/gateway";
import { upstreamKey } from "../../gateway/upstream";
import { checkRedisUrl, redisPassword } from "../../guards/store/shared-state";
import { modelsDirOf, readManifest } from "../../integrity/manifest";
import { modelFiles, modelId } from "../../integrity/resolve";
import { UpstreamPool } from "../../gateway/pool";
import { checkBind } from "../../guards/host";
import { serverTls } from "../../server/tls";
import { EXIT, parseWithConfig, UsageError, unknownSubcommand, type Command } from "../command";

export const config: Command = {
  name: "config",
  summary: "Show the effective configuration, or validate a config file",
  usage: "appliance config print [flags]   |   appliance config validate FILE",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === "print") {
      const { config } = parseWithConfig(rest);
      console.log(JSON.stringify(redactConfig(config), null, 2));
      return EXIT.OK;
    }
    if (sub === "validate") {
      if (rest.length !== 1) throw new UsageError("config validate takes one FILE");
      const config = loadConfig({ file: rest[0], env: {} });
      for (const w of checkResources(config)) console.error(`${rest[0]}: note: ${w}`);
      console.log(`${rest[0]}: valid`);
      return EXIT.OK;
    }
    throw unknownSubcommand("config", sub, ["print", "validate"]);
  },
};

/**
 * What serve checks beyond the schema, so `validate` does not call valid a file serve refuses with exit 2 (scale-out
 * run): upstream key files, the Redis URL and password file, a model id both local and upstream. Throws ConfigError
 * (exit 2). Returns notes for what only the service's own environment can settle: a variable a key is read from is
 * looked for in this shell's environment, which may not be the service's.
 */
function checkResources(config: Config): string[] {
  const notes: string[] = [];
  // The bind and TLS checks serve makes before anything else (fix-attack run 2: a public bind without its flag, a
  // client CA without TLS, a key that is not the certificate's were "valid").
  checkBind(config);
  serverTls(config);
  const unset: string[] = [];
  for (const [i, u] of config.upstreams.entries()) {
    if (u.apiKeyEnv && !process.env[u.apiKeyEnv]) { notes.push(`upstreams[${i}].apiKeyEnv: ${u.apiKeyEnv} is not set here; serve needs it in its own environment`); unset.push(u.apiKeyEnv); continue; }
    upstreamKey(u);
  }
  // The upstreams as the gateway builds them (a key in a URL, one URL listed twice for a model…); unset key
  // variables stand in with a placeholder, noted above.
  new UpstreamPool(config, Date.now, { ...process.env, ...Object.fromEntries(unset.map((n) => [n, "placeholder"])) });
  const rl = config.rateLimit;
  if (rl.store === "redis") {
    checkRedisUrl(rl);
    if (rl.redisPasswordEnv && !rl.redisPasswordFile && !process.env[rl.redisPasswordEnv]) notes.push(`rateLimit.redisPasswordEnv: ${rl.redisPasswordEnv} is not set here; serve needs it in its own environment`);
    else redisPassword(rl, { ...process.env, ...(rl.redisPasswordEnv && { [rl.redisPasswordEnv]: process.env[rl.redisPasswordEnv] ?? "placeholder" }) });
  }
  const upstream = new Set(config.upstreams.flatMap((u) => u.models));
  let local: string[] = [];
  if (config.model.length) {
    try { local = modelFiles(config).map(modelId); } catch (e) {
      throw e instanceof ConfigError ? e : new ConfigError(`invalid config: model: ${(e as Error).message}`, "model");
    }
  } else {
    try { local = readManifest(modelsDirOf(config)).map((e) => modelId(e.file)); } catch { /* not readable here: serve checks it */ }
  }
  refuseClash(local, (id) => upstream.has(id));
  return notes;
}
