/** appliance models add PATH [--name NAME] | list | remove NAME */
import fs from "node:fs";
import path from "node:path";
import { checkGgufHeader } from "../../integrity/gguf-header";
import { MANIFEST, modelsDirOf, readManifest, sha256File, writeManifest } from "../../integrity/manifest";
import { modelId } from "../../integrity/resolve";
import { inheritOwner } from "../../config/owner";
import { EXIT, parseWithConfig, UsageError, type Command } from "../command";

function progress(label: string) {
  if (!process.stderr.isTTY) return undefined;
  let last = -1;
  return (done: number, total: number) => {
    const pct = total ? Math.floor((done / total) * 100) : 100;
    if (pct === last) return;
    last = pct;
    const bar = "#".repeat(Math.floor(pct / 5)).padEnd(20, ".");
    process.stderr.write(`\r${label} [${bar}] ${pct}%${pct === 100 ? "\n" : ""}`);
  };
}

export const models: Command = {
  name: "models",
  summary: "Add, list and remove checksummed models",
  usage: "appliance models add PATH [--name NAME] [--link] | list | remove NAME   (all take --state-dir DIR / --models-dir DIR)",
  async run(argv) {
    const [sub, ...rest] = argv;
    const { config, values, positionals } = parseWithConfig(rest, { name: { type: "string" }, link: { type: "boolean" } }, true);
    const dir = modelsDirOf(config);
    switch (sub) {
      case "add": {
        const src = positionals[0];
        if (!src) throw new UsageError("models add PATH");
        checkGgufHeader(src); // refuse junk before copying GBs
        const name = `${(values.name as string | undefined) ?? modelId(src)}.gguf`;
        if (!/^[A-Za-z0-9._-]+\.gguf$/.test(name)) throw new UsageError("--name may use A-Z a-z 0-9 . _ - only");
        fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
        const dest = path.join(dir, name);
        const digest = await sha256File(src, progress(`sha256 ${path.basename(src)}`));
        if (path.resolve(src) !== path.resolve(dest)) {
          fs.rmSync(dest, { force: true });
          if (values.link) fs.linkSync(src, dest);
          else fs.copyFileSync(src, dest);
          fs.chmodSync(dest, 0o440);
          inheritOwner(dest);
        }
        const copied = await sha256File(dest);
        if (copied !== digest) throw new Error(`${dest}: copy does not match the source (${copied} != ${digest})`);
        writeManifest(dir, [...readManifest(dir).filter((e) => e.file !== name), { sha256: digest, file: name }]);
        inheritOwner(path.join(dir, MANIFEST));
        console.log(`${digest}  ${name}\nadded as model '${modelId(name)}' to ${path.join(dir, MANIFEST)}`);
        return EXIT.OK;
      }
      case "list": {
        for (const e of readManifest(dir)) {
          const present = fs.existsSync(path.join(dir, e.file));
          console.log(`${modelId(e.file).padEnd(32)} ${e.sha256}${present ? "" : "  (file missing)"}`);
        }
        return EXIT.OK;
      }
      case "remove": {
        const id = positionals[0];
        if (!id) throw new UsageError("models remove NAME");
        const entries = readManifest(dir);
        const entry = entries.find((e) => modelId(e.file) === id);
        if (!entry) { console.error(`no model named ${id}`); return EXIT.FAIL; }
        writeManifest(dir, entries.filter((e) => e !== entry));
        inheritOwner(path.join(dir, MANIFEST));
        fs.rmSync(path.join(dir, entry.file), { force: true });
        console.log(`removed ${id}`);
        return EXIT.OK;
      }
    }
    throw new UsageError(`unknown models subcommand '${sub ?? ""}'`);
  },
};
