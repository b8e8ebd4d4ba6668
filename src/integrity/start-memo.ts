/**
 * What a start learned about a model's chat template, remembered for the next start of the same server: that the
 * template passed its trial (model-preflight.ts) and which chat wrapper node-llama-cpp resolved for it
 * (engine/wrapper-choice.ts). Each is keyed by the model's sha256 (checked against the manifest at that start) and
 * the build, so it can only describe those bytes under this code.
 *
 * Kept in the state dir, written by the server's own account. Both used to be kept in the models dir's hash cache,
 * which only root writes: the installed service (its own account) and every per-user server resolved the wrapper
 * (rendering the template against every built-in wrapper) and re-ran the trial at every start, 150-450 ms of each
 * start of the 28 M test model, which bench-cold (run as root) never saw. What the account could forge here it could
 * already do: it owns the state dir (keys, audit log). A forged entry picks another built-in wrapper or skips the
 * trial of a template root admitted: its own server's formatting, or a start that stalls, nothing more.
 */
import fs from "node:fs";
import path from "node:path";
import type { WrapperChoice } from "../engine/wrapper-choice";
import { writeFileAtomic } from "../util/atomic-write";

export const START_MEMO = "start-memo.json";
/** Models remembered at most (the least recently recorded go first). */
const MAX_MODELS = 64;

interface Memo { template?: string; wrapper?: WrapperChoice & { build: string } }

export class StartMemo {
  private models = new Map<string, Memo>();
  private changed = false;

  private constructor(readonly file: string) {}

  /** The state dir's memo; an unreadable or malformed one is an empty memo (every start then works it out again). */
  static open(stateDir: string): StartMemo {
    const memo = new StartMemo(path.join(stateDir, START_MEMO));
    let raw: unknown;
    try { raw = JSON.parse(fs.readFileSync(memo.file, "utf8")); } catch { return memo; }
    const models = (raw as { models?: unknown })?.models;
    if (models && typeof models === "object") {
      for (const [sha256, m] of Object.entries(models as Record<string, Memo>)) {
        if (/^[0-9a-f]{64}$/.test(sha256) && m && typeof m === "object") memo.models.set(sha256, m);
      }
    }
    return memo;
  }

  /** Whether these bytes passed the chat-template trial under the build `key`. */
  templatePassed(sha256: string, key: string): boolean {
    return this.models.get(sha256)?.template === key;
  }

  rememberTemplate(sha256: string, key: string) {
    if (this.templatePassed(sha256, key)) return;
    this.set(sha256, { ...this.models.get(sha256), template: key });
  }

  /** The chat wrapper resolved for these bytes under the build `key`, if remembered. */
  wrapperChoice(sha256: string, key: string): WrapperChoice | undefined {
    const w = this.models.get(sha256)?.wrapper;
    if (!w || w.build !== key || typeof w.type !== "string" || !Number.isInteger(w.settings) || !(w.filename === null || typeof w.filename === "string")) return undefined;
    return { type: w.type, settings: w.settings, filename: w.filename };
  }

  rememberWrapper(sha256: string, key: string, choice: WrapperChoice) {
    const wrapper = { build: key, type: choice.type, settings: choice.settings, filename: choice.filename };
    if (JSON.stringify(this.models.get(sha256)?.wrapper) === JSON.stringify(wrapper)) return;
    this.set(sha256, { ...this.models.get(sha256), wrapper });
  }

  private set(sha256: string, memo: Memo) {
    this.models.delete(sha256); // re-inserted last: the most recently recorded
    this.models.set(sha256, memo);
    while (this.models.size > MAX_MODELS) this.models.delete(this.models.keys().next().value!);
    this.changed = true;
  }

  /** Writes what changed (0600, atomically); false when there was nothing to write or it could not be written. */
  save(): boolean {
    if (!this.changed) return false;
    try {
      writeFileAtomic(this.file, JSON.stringify({ models: Object.fromEntries(this.models) }) + "\n", { mode: 0o600 });
    } catch {
      return false; // a memo: the next start works it out again
    }
    this.changed = false;
    return true;
  }
}
