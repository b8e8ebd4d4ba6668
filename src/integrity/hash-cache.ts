/**
 * A model's sha256 remembered across starts, so an unchanged multi-GB model is not re-read at every start
 * (util/digest-cache.ts: what an entry means and why it cannot describe other bytes).
 *
 * Who could forge one: whoever can write the cache file, or rewrite a model and then the cache. So the cache is
 * used only when the cache file, the manifest and the model file are all owned by root and not writable by group
 * or others (an installed appliance: the service account can then change none of them), and it is written only by
 * root, as root-owned (the daily verify, `models add`, install, a serve run as root) — never by the service account.
 * Anywhere else every start hashes, exactly as without it. (What a start learns about a model's chat template is
 * remembered in the state dir instead, by the server's own account: start-memo.ts.)
 */
import fs from "node:fs";
import path from "node:path";
import { DigestCache, RACY_MS, rootOnly } from "../util/digest-cache";
import { manifestPath } from "./manifest";

export { RACY_MS, rootOnly };

/** In the models dir, next to the manifest; a dot file, so it is never taken for a model. */
export const HASH_CACHE = ".sha256-cache.json";

export const hashCachePath = (modelsDir: string) => path.join(modelsDir, HASH_CACHE);

export class HashCache extends DigestCache {
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
}
