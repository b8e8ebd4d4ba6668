/** appliance config print | validate FILE */
import { loadConfig, redactConfig } from "../../config/load";
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
      loadConfig({ file: rest[0], env: {} });
      console.log(`${rest[0]}: valid`);
      return EXIT.OK;
    }
    throw unknownSubcommand("config", sub, ["print", "validate"]);
  },
};
