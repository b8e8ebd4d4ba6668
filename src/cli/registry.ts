/**
 * The command table: one file per command under commands/. Help, usage and the README's command table read only the
 * entries here; a command's module (and everything it imports: serve's server, node-llama-cpp, the zod schemas) is
 * evaluated only when that command runs, so `appliance --version` and `--help` do not pay for serve's module graph
 * (150-160 ms of program load in the compiled binary). Each entry repeats its command's name, summary, usage and
 * hidden flag; tests/cli/registry.test.ts checks them against the command's own record.
 */
import type { Command } from "./command";

/** A table entry: the command's record, whose run() loads the command's module first. */
export interface CommandEntry extends Command {
  /** The command's own record (evaluates its module). */
  load(): Promise<Command>;
}

function lazy(meta: Omit<Command, "run">, load: () => Promise<Command>): CommandEntry {
  return { ...meta, load, run: async (argv) => (await load()).run(argv) };
}

export const COMMANDS: CommandEntry[] = [
  lazy({ name: "serve", summary: "Run the API server in the foreground", usage: "appliance serve [--model PATH]... [--host H] [--port N] [--threads N] [--ctx-size N] [--parallel N] [--max-queue N] [--state-dir DIR] [--config FILE] [--gpu auto|cuda|vulkan|metal|off]   (every top-level setting is a flag too: --allow-public-bind, --no-auth, --tls-cert…; README, Configuration)" },
    async () => (await import("./commands/serve")).serve),
  lazy({ name: "install", summary: "Install as a hardened systemd/launchd service under its own account", usage: "appliance install [--platform systemd|launchd] [--root DIR] [--dry-run] [--binary FILE] [--model FILE]... [--port N] [--firewall]" },
    async () => (await import("./commands/service")).installCmd),
  lazy({ name: "uninstall", summary: "Stop and remove the service and its built engine (keeps models, keys, logs, config and systemd drop-ins unless --purge)", usage: "appliance uninstall [--purge] [--root DIR] [--platform systemd|launchd] [--dry-run]" },
    async () => (await import("./commands/service")).uninstallCmd),
  lazy({ name: "status", summary: "Show whether the service is running and healthy", usage: "appliance status [--port N] [--platform systemd|launchd] [--state-dir DIR | --config FILE]" },
    async () => (await import("./commands/service")).statusCmd),
  lazy({ name: "verify", summary: "Check models, binary, key files, directories, account, native libraries, listen address and environment", usage: "appliance verify [--json] [--quiet] [--skip-models] [--pre-start] [--root DIR] [--platform systemd|launchd] [--state-dir DIR] [--config FILE]" },
    async () => (await import("./commands/verify")).verify),
  lazy({ name: "doctor", summary: "Check the machine's security baseline (disk encryption, MAC, firewall, updates / FileVault, SIP, Gatekeeper)", usage: "appliance doctor [--json]" },
    async () => (await import("./commands/doctor")).doctor),
  lazy({ name: "models", summary: "Add, list and remove checksummed models", usage: "appliance models add PATH [--name NAME] [--link] [--follow-symlinks] | list | remove NAME   (all take --state-dir DIR / --models-dir DIR)" },
    async () => (await import("./commands/models")).models),
  lazy({ name: "keys", summary: "Create, list, revoke and rotate API keys", usage: "appliance keys create --name NAME [--scopes chat,completions,embeddings,models,metrics,admin | --scope S]... [--expires 30d] [--rpm N] [--tpm N] [--max-concurrent N] [--require-signature --public-key FILE] | list [--json] | revoke NAME...|--all | rotate NAME [--grace 1h] [--public-key FILE]   (all take --state-dir DIR or --config FILE)" },
    async () => (await import("./commands/keys")).keys),
  lazy({ name: "audit", summary: "Verify the audit log (MACs, hash chain across rotated files, checkpoints); anchor it in a file the service cannot write", usage: "appliance audit verify [--file F] [--state-dir DIR | --config FILE] [--checkpoints FILE]... [--journal] | audit anchor --to FILE [--file F] [--state-dir DIR | --config FILE] [--full] [--alert-dir DIR]" },
    async () => (await import("./commands/audit")).audit),
  lazy({ name: "config", summary: "Show the effective configuration, or validate a config file", usage: "appliance config print [flags]   |   appliance config validate FILE" },
    async () => (await import("./commands/config")).config),
  lazy({ name: "update", summary: "Swap in a new binary (signature or checksum verified), restart, roll back automatically if unhealthy", usage: "appliance update --binary NEW (--signature SHA256SUMS.sig [--sums SHA256SUMS] [--pubkey KEY.pub] | --sha256 HEX) [--root DIR] [--platform systemd|launchd] [--port N]" },
    async () => (await import("./commands/service")).updateCmd),
  lazy({ name: "rollback", summary: "Go back to the binary that the last update replaced", usage: "appliance rollback [--root DIR] [--platform systemd|launchd] [--port N]" },
    async () => (await import("./commands/service")).rollbackCmd),
  lazy({ name: "version", summary: "Print app version, git commit, source digest (what the start memo is keyed by), Bun version and llama.cpp release", usage: "appliance --version" },
    async () => (await import("./commands/version")).version),
  lazy({ name: "gpu-preflight", summary: "Internal: try a GPU backend in isolation", usage: "appliance gpu-preflight --gpu cuda|vulkan|metal --state-dir DIR", hidden: true },
    async () => (await import("./commands/gpu-preflight")).gpuPreflight),
  lazy({ name: "reload", summary: "Internal: ask the running server to re-read its keys (SIGHUP)", usage: "appliance reload --pid PID", hidden: true },
    async () => (await import("./commands/reload")).reload),
  lazy({ name: "incident", summary: "Incident tooling: snapshot logs, audit chain, redacted config, key metadata, checks and process stats into one archive", usage: "appliance incident snapshot [--out FILE] [--pid N] [--log-lines N] [--audit-lines N] [--root DIR] [--platform systemd|launchd] [--state-dir DIR] [--config FILE] [--port N]" },
    async () => (await import("./commands/incident")).incident),
  lazy({ name: "lockdown", summary: "Stop serving inference (only /health and /metrics answer) until 'lockdown --off'", usage: "appliance lockdown [--off] [--reason TEXT] [--state-dir DIR] [--config FILE] [--root DIR] [--platform systemd|launchd]" },
    async () => (await import("./commands/lockdown")).lockdown),
  lazy({ name: "engine", summary: "Build our own llama.cpp engine on this machine (engine build), or show the built one (engine status)", usage: "appliance engine build [--gpu cuda|vulkan] [--cuda-arch LIST] [--portable] [--jobs N] [--config FILE]\n       appliance engine status [--json] [--config FILE]" },
    async () => (await import("./commands/engine")).engine),
];

export function helpText(): string {
  const rows = COMMANDS.filter((c) => !c.hidden).map((c) => `  ${c.name.padEnd(12)} ${c.summary}`);
  return `appliance — hardened OpenAI-compatible inference server in one binary\n\nusage: appliance COMMAND [flags]\n\n${rows.join("\n")}\n\n` +
    "Run 'appliance COMMAND --help' for a command's flags. Exit codes: 0 ok, 1 failure, 2 usage/config error, 3 build tools missing (engine build), 4 a model failed its integrity check (serve).";
}
