/**
 * Which model files the server may load, and the proof that each is the file
 * the operator recorded: sha256 against the manifest, then the GGUF header
 * check — all before node-llama-cpp ever parses a byte. Model names in the API
 * map to these entries; no path from a request reaches the filesystem.
 *
 * Each file is opened once; the hash and the header check read that descriptor, and the engine
 * loads it through /proc/self/fd/N (Linux) or /dev/fd/N (macOS), so a file renamed over the path
 * after it was hashed is never what llama.cpp parses. The descriptors stay open for the life of the
 * process (one per model).
 */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/schema";
import { ConfigError, dirFlags } from "../config/load";
import type { ModelSource } from "../engine/llama";
import type { WrapperChoice } from "../engine/wrapper-choice";
import { checkGgufHeader } from "./gguf-header";
import { sha256Fd } from "../util/sha256";
import { descriptorPath } from "../util/fs";
import { MANIFEST, modelsDirOf, readManifest } from "./manifest";
import { preflightTemplate } from "./model-preflight";
import { HashCache } from "./hash-cache";
import { StartMemo, memoBuild } from "./start-memo";
import type { StartPhases } from "../util/start-phases";

export class ModelIntegrityError extends Error {
  constructor(message: string) { super(message); this.name = "ModelIntegrityError"; }
}

export const modelId = (file: string) => path.basename(file).replace(/\.gguf$/i, "");

/**
 * The model files a start serves: the --model paths (a directory: its .gguf files), else the manifest's. Nothing to
 * serve is a configuration state, not a failed integrity check: ConfigError, exit 2 (the unit does not retry it)
 * and no alert (it was alerted as tampering, 5 times, after `models remove` of the last model). A --model path
 * that is not there, or two with one name: ConfigError too. `config validate` asks it too.
 */
export function modelFiles(config: Pick<Config, "model" | "modelsDir" | "stateDir">, manifest = readManifest(modelsDirOf(config))): string[] {
  const dir = modelsDirOf(config);
  const files = config.model.length ? config.model.flatMap(expand) : manifest.map((e) => path.join(dir, e.file));
  if (!files.length) {
    throw new ConfigError(config.model.length ? `no .gguf files in ${config.model.join(", ")}`
      : `no models: the manifest ${path.join(dir, MANIFEST)} lists none. Add one with: appliance models add FILE${dirFlags(config, true)}`, "model");
  }
  return files;
}

/** A --model path's model files: the file, or a directory's .gguf files (sorted); ModelIntegrityError if it is not there. */
function expand(p: string): string[] {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  // A path the operator typed (flag or config file; the installed service loads its manifest's): a usage mistake,
  // exit 2 as `config validate` says for the same config, not exit 4 with an integrity alert.
  if (!st) throw new ConfigError(`model path ${p} does not exist`, "model");
  if (!st.isDirectory()) return [p];
  return fs.readdirSync(p).filter((f) => f.toLowerCase().endsWith(".gguf")).sort().map((f) => path.join(p, f));
}

/** `hashed`: read and hashed now; false: its sha256 came from the root-owned hash cache (see hash-cache.ts). */
export interface ResolvedModels { models: (ModelSource & { file: string; sha256: string; hashed: boolean; hashMs: number })[]; warnings: string[] }


export interface ResolveOptions {
  /** Told each model's hashing progress (serve extends systemd's start timeout on it). */
  onProgress?: (status: string) => void;
  /** Gets "model hash" (and "template preflight" unless deferred). */
  phases?: StartPhases;
  /** Wall clock in ms for the hash cache's racy-file window (tests). */
  now?: () => number;
  /**
   * Return before the chat-template trials end: they run in their child processes while the caller does other
   * start work (the native check), and the caller MUST await `templates` before anything renders a template.
   */
  deferTemplates?: boolean;
  /** Told when what a start learned cannot be remembered for the next (start-memo.ts). */
  warn?: (message: string) => void;
}

export async function resolveModels(config: Pick<Config, "model" | "modelsDir" | "stateDir" | "allowUnverified">,
  opts: ResolveOptions = {}): Promise<ResolvedModels & { templates: Promise<void> }> {
  const { onProgress, phases } = opts;
  const dir = modelsDirOf(config);
  const manifest = readManifest(dir);
  const warnings: string[] = [];
  const files = modelFiles(config, manifest);
  const models: ResolvedModels["models"] = [];
  const opened: number[] = [];
  const closeAll = () => { for (const fd of opened.splice(0)) fs.closeSync(fd); };
  const cache = HashCache.open(dir, { now: opts.now });
  const memo = StartMemo.open(config.stateDir, opts.warn);
  const trials: Promise<void>[] = [];
  let key: string | undefined | null = null;
  try {
    for (const file of files) {
      let fd: number;
      try { fd = fs.openSync(file, "r"); } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT") throw new ModelIntegrityError(`${file} is listed in the manifest but missing`);
        throw new Error(`${file} cannot be opened (${code ?? (e as Error).message}): this account (uid ${process.getuid?.()}) needs read access to it`);
      }
      opened.push(fd);
      const t0 = performance.now();
      const before = fs.fstatSync(fd, { bigint: true });
      const cached = cache.lookup(file, before);
      const actual = cached ?? await sha256Fd(fd, onProgress && ((done, total) => onProgress(`hashing ${path.basename(file)}: ${Math.floor((100 * done) / Math.max(1, total))}%`)));
      if (!cached) cache.remember(file, before, fs.fstatSync(fd, { bigint: true }), actual);
      const hashMs = Math.round(performance.now() - t0);
      phases?.mark("model hash");
      const inDir = path.resolve(path.dirname(file)) === path.resolve(dir);
      const entry = (inDir ? manifest.find((e) => e.file === path.basename(file)) : undefined) ?? manifest.find((e) => e.sha256 === actual);
      if (!entry) {
        const msg = `${file} is not in the manifest ${path.join(dir, MANIFEST)} (sha256 ${actual})`;
        if (!config.allowUnverified) throw new ModelIntegrityError(`${msg}; add it with: appliance models add ${file}${dirFlags(config, true)}`);
        warnings.push(`${msg}: loading anyway because --allow-unverified is set`);
      } else if (entry.sha256 !== actual) {
        const msg = `${file} does not match the manifest: expected sha256 ${entry.sha256}, actual ${actual}`;
        if (!config.allowUnverified) throw new ModelIntegrityError(msg);
        warnings.push(`${msg}: loading anyway because --allow-unverified is set`);
      }
      let chatTemplate: string | undefined;
      try { ({ chatTemplate } = checkGgufHeader(file, fd)); } catch (e) { throw new ModelIntegrityError((e as Error).message); }
      // The engine renders this template on every chat (and once at load): a looping one would stall the server.
      // A pass is remembered in the state dir (start-memo.ts), for these exact bytes and this exact build.
      if (chatTemplate) {
        if (key === null) key = memoBuild();
        const k = key;
        if (!(k && memo.templatePassed(actual, k))) {
          trials.push(preflightTemplate(chatTemplate, file).then(() => { if (k) memo.rememberTemplate(actual, k); }));
        }
      }
      const id = entry && inDir ? modelId(entry.file) : modelId(file);
      if (models.some((m) => m.id === id)) throw new ConfigError(`two models are named ${id} (a model's name is its file name without .gguf)`, "model");
      // The engine rebuilds the chat wrapper remembered for these bytes and this build, or reports the one it resolved.
      if (key === null) key = memoBuild();
      const wk = key;
      const wrapper = wk ? {
        choice: memo.wrapperChoice(actual, wk),
        remember: (choice: WrapperChoice) => { memo.rememberWrapper(actual, wk, choice); memo.save(); },
      } : undefined;
      models.push({ id, path: descriptorPath(fd), file, sha256: actual, hashed: !cached, hashMs, wrapper });
    }
  } catch (e) {
    closeAll();
    throw e;
  }
  const templates = Promise.all(trials).then(() => { cache.save(); memo.save(); }, (e: Error) => { // hashes (root only) and passes are true facts
    closeAll();
    throw new ModelIntegrityError(e.message);
  });
  templates.catch(() => undefined); // deferred: the caller awaits it later; an early failure is not unhandled meanwhile
  if (!opts.deferTemplates) { await templates; phases?.mark("template preflight"); }
  return { models, warnings, templates };
}
