/**
 * argv → command → exit code. Last-resort errors go to stderr with exit 1, never a stack to the user.
 * The commands load lazily so that the entry point can fix NODE_ENV before Elysia reads it (once, at import).
 */
import { EXIT } from "./cli/exit-codes";
import { startIsOver } from "./util/jit-policy";

export async function main(argv: string[]): Promise<number> {
  const { COMMANDS, helpText } = await import("./cli/registry");
  const [name, ...rest] = argv;
  // Asked for: stdout, exit 0. No command at all is a usage error: the help goes to stderr with exit 2.
  if (!name) { console.error(helpText()); return EXIT.USAGE; }
  if (name === "help" || name === "--help" || name === "-h") { console.log(helpText()); return EXIT.OK; }
  if (name === "--version" || name === "-V") return COMMANDS.find((c) => c.name === "version")!.run(rest);
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) { console.error(`appliance: unknown command '${name}'\n\n${helpText()}`); return EXIT.USAGE; }
  if (rest.includes("--help") || rest.includes("-h")) { console.log(`usage: ${cmd.usage}`); return EXIT.OK; }
  try {
    const command = await cmd.load();
    // The start is over once the command's modules are loaded, but for serve, which ends it once listening.
    if (command.name !== "serve") startIsOver();
    return await command.run(rest);
  } catch (e) {
    // Loaded here, not up front: --version and --help need neither (the config module builds the zod schema).
    const [{ UsageError }, { ConfigError }] = await Promise.all([import("./cli/command"), import("./config/load")]);
    if (e instanceof ConfigError || e instanceof UsageError) {
      console.error(`appliance ${name}: ${e.message}`);
      if (e instanceof UsageError) console.error(`usage: ${cmd.usage}`);
      return EXIT.USAGE;
    }
    console.error(`appliance ${name}: ${(e as Error)?.message ?? e}`);
    if (/^(1|true|yes|on)$/i.test(process.env.APPLIANCE_DEBUG ?? "")) console.error(e); // APPLIANCE_DEBUG=0 is off
    return EXIT.FAIL;
  }
}

if (import.meta.main) {
  // The shipped program is always production, whatever the environment says: Elysia then keeps validation
  // details out of error messages, and nothing falls back to development behaviour.
  Bun.env.NODE_ENV = "production";
  // serve: malloc with transparent huge pages (the KV cache's page faults were a third of a cold start; util/huge-pages.ts).
  if (process.argv[2] === "serve") (await import("./util/huge-pages")).reexecWithHugePages();
  const code = await main(process.argv.slice(2));
  process.exit(code);
}
