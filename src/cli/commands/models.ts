/** appliance models add PATH [--name NAME] | list | remove NAME */
import fs from "node:fs";
import path from "node:path";
import { addModel, ModelAddError, removeOwnTemps } from "../../integrity/add-model";
import { onInterrupt } from "../on-interrupt";
import { runPreflightChild, runTemplateChild, stopTrials } from "../../integrity/model-preflight";
import { tryForServe } from "../../integrity/serve-prep";
import { MANIFEST, manifestPath, modelsDirOf, readManifest, writeManifest } from "../../integrity/manifest";
import { withFileLock } from "../../util/file-lock";
import { auditWriterRunning } from "../../log/audit";
import { modelId } from "../../integrity/resolve";
import { EXIT, parseWithConfig, UsageError, unknownSubcommand, type Command } from "../command";

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

const MODELS_SUBS = ["add", "list", "remove"];
/** Each subcommand's own flags besides the settings' (--state-dir, --models-dir…): another's is a usage error. */
const MODELS_FLAGS = {
  add: { name: { type: "string" }, link: { type: "boolean" }, "follow-symlinks": { type: "boolean" } },
  list: {}, remove: {},
  preflight: { "native-dir": { type: "string" }, "template-only": { type: "boolean" } },
} as const;

/** A server running on this state dir serves the models it loaded at its start: said after a change, picked up on restart. */
function runningServerNote(stateDir: string) {
  if (auditWriterRunning(stateDir)) console.error("a server is running on this state dir: it serves the models it started with until it is restarted (the installed service: systemctl restart appliance)");
}

export const models: Command = {
  name: "models",
  summary: "Add, list and remove checksummed models",
  usage: "appliance models add PATH [--name NAME] [--link] [--follow-symlinks] | list | remove NAME   (all take --state-dir DIR / --models-dir DIR)",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== "preflight" && !MODELS_SUBS.includes(sub!)) throw unknownSubcommand("models", sub, MODELS_SUBS);
    const { config, values, positionals } = parseWithConfig(rest, MODELS_FLAGS[sub as keyof typeof MODELS_FLAGS], true, ["name"]);
    // One PATH or NAME: `models add ./dir/*.gguf` added the first file, `remove a b` removed a, both exit 0.
    const most = sub === "list" ? 0 : 1;
    if (positionals.length > most) {
      throw new UsageError(`models ${sub} takes ${most ? "one" : "no"} ${sub === "remove" ? "NAME" : "PATH"}${most ? " (run it once per model)" : ""}, got: ${positionals.join(" ")}`);
    }
    const dir = modelsDirOf(config);
    switch (sub) {
      case "add": {
        const src = positionals[0];
        if (!src) throw new UsageError("models add PATH");
        let added, record: ((sha256: string) => void) | undefined;
        // Interrupted, the add removes its private copy (or link) of the model: a Ctrl-C left the model's size behind.
        const id = (values.name as string | undefined) ?? modelId(src);
        const stopHandling = onInterrupt(() => {
          stopTrials(); // its trial load too: it ran on, orphaned, on the deleted copy (attack on the fix)
          for (const f of removeOwnTemps(dir, id)) console.error(`models add interrupted: removed ${f}`);
        });
        try {
          added = await addModel({ src, dir, name: values.name as string | undefined, link: !!values.link,
            onLockWait: (lock) => console.error(`waiting for ${lock}: another process is changing this models dir's manifest`),
            followSymlinks: !!values["follow-symlinks"], onProgress: progress(`sha256 ${path.basename(src)}`),
            preflight: async (file) => { record = await tryForServe(file, src, config.stateDir); } });
        } catch (e) {
          if (e instanceof ModelAddError && /model name|does not exist$/.test(e.message)) throw new UsageError(e.message); // mistyped arguments: exit 2, as serve --model
          throw e;
        } finally {
          stopHandling();
        }
        record?.(added.sha256); // what the trial learned, for the first start (integrity/serve-prep.ts)
        console.log(`${added.sha256}  ${path.basename(added.file)}\n${added.replaced ? `replaced model '${added.id}' (was sha256 ${added.replaced}) in` : `added as model '${added.id}' to`} ${path.join(dir, MANIFEST)}`);
        runningServerNote(config.stateDir);
        return EXIT.OK;
      }
      case "preflight": { // internal: the child process preflightModel runs
        if (values["template-only"]) { await runTemplateChild(); return EXIT.OK; }
        const file = positionals[0];
        if (!file || !values["native-dir"]) throw new UsageError("models preflight FILE --native-dir DIR | --template-only");
        await runPreflightChild(file, String(values["native-dir"]));
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
        // No models dir: nothing to remove, and nothing made (the manifest's lock created a mistyped state dir).
        if (!fs.existsSync(dir)) { console.error(`no model named ${id} (no models dir at ${dir})`); return EXIT.FAIL; }
        const entry = await withFileLock(manifestPath(dir), () => {
          const entries = readManifest(dir);
          const found = entries.find((e) => modelId(e.file) === id);
          if (found) writeManifest(dir, entries.filter((e) => e !== found));
          return found;
        });
        if (!entry) { console.error(`no model named ${id}`); return EXIT.FAIL; }
        fs.rmSync(path.join(dir, entry.file), { force: true });
        console.log(`removed ${id}`);
        if (!readManifest(dir).length) console.error(`no models left: serve (and the installed service) will not start until one is added (appliance models add FILE)`);
        runningServerNote(config.stateDir);
        return EXIT.OK;
      }
    }
    throw unknownSubcommand("models", sub, MODELS_SUBS);
  },
};
