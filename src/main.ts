/** argv → command → exit code. Last-resort errors go to stderr with exit 1, never a stack to the user. */
import { UsageError } from "./cli/command";
import { EXIT } from "./cli/exit-codes";
import { COMMANDS, helpText } from "./cli/registry";
import { ConfigError } from "./config/load";

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") { console.log(helpText()); return name ? EXIT.OK : EXIT.USAGE; }
  if (name === "--version" || name === "-V") return COMMANDS.find((c) => c.name === "version")!.run([]);
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) { console.error(`appliance: unknown command '${name}'\n\n${helpText()}`); return EXIT.USAGE; }
  if (rest.includes("--help") || rest.includes("-h")) { console.log(`usage: ${cmd.usage}`); return EXIT.OK; }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof ConfigError || e instanceof UsageError) {
      console.error(`appliance ${name}: ${e.message}`);
      if (e instanceof UsageError) console.error(`usage: ${cmd.usage}`);
      return EXIT.USAGE;
    }
    console.error(`appliance ${name}: ${(e as Error)?.message ?? e}`);
    if (process.env.APPLIANCE_DEBUG) console.error(e);
    return EXIT.FAIL;
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  process.exit(code);
}
