/** appliance version (also --version) */
import { formatVersion, versionInfo } from "../../version";
import type { Command } from "../command";
import { EXIT } from "../exit-codes"; // not ../command: that module loads the config schema

export const version: Command = {
  name: "version",
  summary: "Print app version, git commit, source digest (what the start memo is keyed by), Bun version and llama.cpp release",
  usage: "appliance --version",
  async run(argv) {
    // Every other command refuses what it does not take; `version --bogus` printed and exited 0.
    if (argv.length) { console.error(`appliance version: takes no arguments, got: ${argv.join(" ")}\nusage: appliance --version`); return EXIT.USAGE; }
    console.log(formatVersion(versionInfo()));
    return EXIT.OK;
  },
};
