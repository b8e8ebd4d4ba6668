/**
 * A model's sha256 remembered across starts, so an unchanged multi-GB model is not re-read at every start
 * (util/digest-cache.ts: what an entry means and why it cannot describe other bytes).
 *
 * Who could forge one: whoever can write the cache file, or rewrite a model and then the cache. So the cache is
 * used only when the cache file, the manifest and the model file are all owned by root and not writable by group
 * or others (an installed appliance: the service account can then change none of them), and it is written only by
 * root, as root-owned (the daily verify, `models add`, install, a serve run as root) — never by the service account.
 * Anywhere else every start hashes, exactly as without it.
 */
import fs from "node:fs";
import path from "node:path";
import { DigestCache, RACY_MS, rootOnly, type DigestEntry } from "../util/digest-cache";
import { manifestPath } from "./manifest";
import type { WrapperChoice } from "../engine/wrapper-choice";

export { RACY_MS, rootOnly };

/** In the models dir, next to the manifest; a dot file, so it is never taken for a model. */
export const HASH_CACHE = ".sha256-cache.json";

/**
 * `template`: the build (see resolve.ts) whose chat-template trial these bytes passed; `wrapper`: the chat wrapper
 * that build resolved for these bytes (engine/wrapper-choice.ts), so the next start rebuilds it instead.
 */
interface Entry extends DigestEntry { template?: string; wrapper?: WrapperChoice & { build: string } }
type FileStat = fs.BigIntStats;

export const hashCachePath = (modelsDir: string) => path.join(modelsDir, HASH_CACHE);

export class HashCache extends DigestCache<Entry> {
  private constructor(readonly modelsDir: string, opts: { euid?: number; now?: () => number }) {
    super(hashCachePath(modelsDir), { ...opts, distrust: () => {
      const manifest = fs.lstatSync(manifestPath(modelsDir), { throwIfNoEntry: false });
      return manifest?.isFile() && rootOnly(manifest) ? undefined : "the manifest is not a root-owned file writable only by root";
    } });
  }

  /** Opens the models dir's cache; writable only by root (what root writes is root-owned). `now`: wall clock, ms. */
  static open(modelsDir: string, opts: { euid?: number; now?: () => number } = {}): HashCache {
    return new HashCache(modelsDir, opts);
  }

  /** Whether these exact bytes (as in lookup) passed the chat-template trial under the build `key`. */
  templatePassed(file: string, st: FileStat, key: string): boolean {
    return this.entry(file, st)?.template === key;
  }

  /** Records a template trial passed, on the entry of these exact bytes (only if their hash is remembered). */
  rememberTemplate(file: string, st: FileStat, key: string) {
    const e = this.writableEntry(file, st);
    if (!e || e.template === key) return;
    e.template = key;
    this.markChanged();
  }

  /** The chat wrapper resolved for these exact bytes (as in lookup) under the build `key`, if remembered. */
  wrapperChoice(file: string, st: FileStat, key: string): WrapperChoice | undefined {
    const w = this.entry(file, st)?.wrapper;
    if (!w || w.build !== key || typeof w.type !== "string" || !Number.isInteger(w.settings) || !(w.filename === null || typeof w.filename === "string")) return undefined;
    return { type: w.type, settings: w.settings, filename: w.filename };
  }

  /** Records the chat wrapper resolved for these exact bytes under the build `key` (only if their hash is remembered). */
  rememberWrapper(file: string, st: FileStat, key: string, choice: WrapperChoice) {
    const e = this.writableEntry(file, st);
    const wrapper = { build: key, type: choice.type, settings: choice.settings, filename: choice.filename };
    if (!e || JSON.stringify(e.wrapper) === JSON.stringify(wrapper)) return;
    e.wrapper = wrapper;
    this.markChanged();
  }
}
