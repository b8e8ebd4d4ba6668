/** The command table: one file per command under commands/. */
import type { Command } from "./command";
import { audit } from "./commands/audit";
import { config } from "./commands/config";
import { gpuPreflight } from "./commands/gpu-preflight";
import { keys } from "./commands/keys";
import { models } from "./commands/models";
import { serve } from "./commands/serve";
import { version } from "./commands/version";
import { doctor } from "./commands/doctor";
import { installCmd, rollbackCmd, statusCmd, uninstallCmd, updateCmd } from "./commands/service";
import { reload } from "./commands/reload";
import { verify } from "./commands/verify";
import { incident } from "./commands/incident";
import { lockdown } from "./commands/lockdown";
import { engine } from "./commands/engine";

export const COMMANDS: Command[] = [
  serve, installCmd, uninstallCmd, statusCmd, verify, doctor, models, keys, audit, config, updateCmd, rollbackCmd, version, gpuPreflight, reload, incident, lockdown, engine,
];

export function helpText(): string {
  const rows = COMMANDS.filter((c) => !c.hidden).map((c) => `  ${c.name.padEnd(12)} ${c.summary}`);
  return `appliance — hardened OpenAI-compatible inference server in one binary\n\nusage: appliance COMMAND [flags]\n\n${rows.join("\n")}\n\n` +
    "Run 'appliance COMMAND --help' for a command's flags. Exit codes: 0 ok, 1 failure, 2 usage/config error, 3 build tools missing (engine build).";
}
