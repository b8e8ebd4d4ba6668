/**
 * What a start learned about a model's chat template, remembered for the next start of the same server: that the
 * template passed its trial (model-preflight.ts) and which chat wrapper node-llama-cpp resolved for it
 * (engine/wrapper-choice.ts). Each is keyed by the model's sha256 (checked against the manifest at that start) and
 * the build (version.ts `source`: a digest of what the binary was built from), so it can only describe those bytes
 * under that code; the two most recent builds are kept per model, so a rollback finds its own.
 *
 * Kept in the state dir, written by the server's own account. Both used to be kept in the models dir's hash cache,
 * which only root writes: the installed service (its own account) and every per-user server resolved the wrapper
 * (rendering the template against every built-in wrapper) and re-ran the trial at every start, 150-450 ms of each
 * start of the 28 M test model, which bench-cold (run as root) never saw. What the account could forge here it could
 * already do: it owns the state dir (keys, audit log). A forged entry picks another built-in wrapper or skips the
 * trial of a template root admitted: its own server's formatting, or a start that stalls, nothing more. What is read
 * back is only ever a regular file of at most MAX_BYTES (a FIFO, a device or a link planted there is an empty memo,
 * replaced at the next save), and only the fields below, checked, are kept.
 *
 * Several processes write it (a `models add` beside a running server, three `models add` at once): a save takes the
 * memo's lock, reads it again and applies only this process's own changes to what is there, so none is lost (each
 * used to write its whole view, dropping what another had saved since it opened the memo).
 */
import path from "node:path";
import type { WrapperChoice } from "../engine/wrapper-choice";
import { writeFileAtomic } from "../util/atomic-write";
import { withFileLockSync } from "../util/file-lock";
import { readSmallFile } from "../util/fs";
import { versionInfo } from "../version";

export const START_MEMO = "start-memo.json";

/**
 * The build a remembered trial or wrapper holds for, only ever the very same program: the compiled binary's digest
 * of its sources (a dirty tree's build is not its commit's), else, from source, the commit; undefined (nothing
 * remembered) without either.
 */
export function memoBuild(): string | undefined {
  const v = versionInfo();
  if (v.source) return `${v.app} ${v.source} bun ${v.bun}`;
  return v.commit === "unknown" ? undefined : `${v.app} ${v.commit} bun ${v.bun}`;
}
/** Models remembered at most (the least recently recorded go first), and builds per model. */
const MAX_MODELS = 64;
const MAX_BUILDS = 2;
/** Far above what MAX_MODELS entries take (~300 bytes each). */
const MAX_BYTES = 1 << 20;

interface Fact { template?: true; wrapper?: WrapperChoice }
/** sha256 → build → what that build learned (insertion order: least recently recorded first, at both levels). */
type Models = Map<string, Map<string, Fact>>;

const SHA256 = /^[0-9a-f]{64}$/;
const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** A wrapper choice as wrapper-choice.ts makes them, or undefined. */
function wrapperOf(w: unknown): WrapperChoice | undefined {
  if (!isRecord(w)) return undefined;
  const { type, settings, filename } = w;
  if (typeof type !== "string" || type.length > 64 || !Number.isInteger(settings) || (settings as number) < 0 || (settings as number) > 1000) return undefined;
  if (!(filename === null || (typeof filename === "string" && filename.length <= 255))) return undefined;
  return { type, settings: settings as number, filename };
}

function factOf(f: unknown): Fact | undefined {
  if (!isRecord(f)) return undefined;
  const wrapper = wrapperOf(f.wrapper);
  const fact: Fact = { ...(f.template === true && { template: true as const }), ...(wrapper && { wrapper }) };
  return fact.template || fact.wrapper ? fact : undefined;
}

/** The memo at `file` as far as it is valid (see StartMemo.open). */
function readModels(file: string): Models {
  const models: Models = new Map();
  const text = readSmallFile(file, MAX_BYTES);
  let raw: unknown;
  try { raw = text === undefined ? undefined : JSON.parse(text); } catch { /* an empty memo */ }
  const all = isRecord(raw) && raw.version === 2 && isRecord(raw.models) ? raw.models : {};
  for (const [sha256, builds] of Object.entries(all).slice(-MAX_MODELS)) {
    if (!SHA256.test(sha256) || !isRecord(builds)) continue;
    const kept = new Map<string, Fact>();
    for (const [build, f] of Object.entries(builds).slice(-MAX_BUILDS)) {
      const fact = build.length <= 256 ? factOf(f) : undefined;
      if (fact) kept.set(build, fact);
    }
    if (kept.size) models.set(sha256, kept);
  }
  return models;
}

/** Adds `fact` to what `build` learned about these bytes; both move to the end (the most recently recorded). */
function record(models: Models, sha256: string, build: string, fact: Fact) {
  const builds = models.get(sha256) ?? new Map<string, Fact>();
  const merged = { ...builds.get(build), ...fact };
  builds.delete(build);
  builds.set(build, merged);
  while (builds.size > MAX_BUILDS) builds.delete(builds.keys().next().value!);
  models.delete(sha256);
  models.set(sha256, builds);
  while (models.size > MAX_MODELS) models.delete(models.keys().next().value!);
}

export class StartMemo {
  private warned = false;
  /** This process's changes since the last save, replayed at the next save onto the memo as it is then on disk. */
  private pending: ((models: Models) => void)[] = [];

  private constructor(readonly file: string, private models: Models, private readonly onError?: (reason: string) => void) {}

  /**
   * The state dir's memo. A missing, unreadable, oversized or malformed one is an empty memo (every start then works
   * it out again). `onError`: told when the memo cannot be written (a start that can never remember says so).
   */
  static open(stateDir: string, onError?: (reason: string) => void): StartMemo {
    const file = path.join(stateDir, START_MEMO);
    return new StartMemo(file, readModels(file), onError);
  }

  /** Whether these bytes passed the chat-template trial under the build `build`. */
  templatePassed(sha256: string, build: string): boolean {
    return this.used(sha256, build)?.template === true;
  }

  rememberTemplate(sha256: string, build: string) {
    if (this.models.get(sha256)?.get(build)?.template !== true) this.set(sha256, build, { template: true });
  }

  /** The chat wrapper resolved for these bytes under the build `build`, if remembered. */
  wrapperChoice(sha256: string, build: string): WrapperChoice | undefined {
    const w = this.used(sha256, build)?.wrapper;
    return w && { ...w };
  }

  /**
   * What `build` learned about these bytes, now the most recently used: the build kept beside the running one is the
   * one that ran before it, so a rollback finds its own (A, B, A, C, A resolved again at the last A: fix-attack run).
   */
  private used(sha256: string, build: string): Fact | undefined {
    const builds = this.models.get(sha256), fact = builds?.get(build);
    if (builds && fact && [...builds.keys()].at(-1) !== build) {
      builds.delete(build);
      builds.set(build, fact);
      // On disk: moved to the end only if another process has not dropped it since (a touch adds nothing).
      this.pending.push((models) => { if (models.get(sha256)?.has(build)) record(models, sha256, build, {}); });
    }
    return fact;
  }

  rememberWrapper(sha256: string, build: string, choice: WrapperChoice) {
    const wrapper = wrapperOf(choice);
    if (wrapper && JSON.stringify(this.models.get(sha256)?.get(build)?.wrapper) !== JSON.stringify(wrapper)) this.set(sha256, build, { wrapper });
  }

  private set(sha256: string, build: string, fact: Fact) {
    record(this.models, sha256, build, fact);
    this.pending.push((models) => record(models, sha256, build, fact));
  }

  /**
   * Writes this process's changes onto the memo as it is now (0600, atomically, replacing whatever is at the path),
   * under its lock; false when nothing was written.
   */
  save(): boolean {
    if (!this.pending.length) return false;
    try {
      withFileLockSync(this.file, () => {
        const now = readModels(this.file);
        for (const change of this.pending) change(now);
        const models = Object.fromEntries([...now].map(([sha, builds]) => [sha, Object.fromEntries(builds)]));
        writeFileAtomic(this.file, JSON.stringify({ version: 2, models }) + "\n", { mode: 0o600 });
        this.models = now;
      });
    } catch (e) {
      if (!this.warned) this.onError?.(`${this.file} cannot be written (${(e as Error).message}): every start resolves the chat wrapper again`);
      this.warned = true; // once per start (it is saved twice: after the trials, after the wrapper)
      return false;
    }
    this.pending = [];
    return true;
  }
}
