/**
 * `models add`'s trial of a model, and what it learned handed to the first start of the server on that state dir.
 *
 * A first `serve` after `models add` unpacked ~30 MB of native libraries (~280 ms here), ran the chat template's trial
 * in a child and resolved the chat wrapper (~280 ms for the 28 M test model: node-llama-cpp renders the template
 * against every built-in wrapper), all of it again after the trial run had just done the same (bench-peer's cold
 * start, state removed: 5.1-5.5x llama-server's). Now the trial run does it the way serve does and leaves it where
 * serve looks: the libraries unpacked in <stateDir>/native (prepareNative, checked at every start as before), the
 * template's trial and the wrapper in the start memo (start-memo.ts, keyed by the model's sha256 and this build).
 * Only where the state dir is this account's own: root adding a model for the installed service (whose account owns
 * its state dir) leaves nothing there, as before, and that service resolves at its first start.
 */
import fs from "node:fs";
import path from "node:path";
import { CPU_BACKEND_FILE } from "../engine/cpu-backend";
import { checkGgufHeader } from "./gguf-header";
import { tryModel, type TrialResult } from "./model-preflight";
import { StartMemo, memoBuild } from "./start-memo";

/** Whether `dir` is this account's own (or does not exist yet: the trial run then makes it, as this account). */
function ownDir(dir: string): boolean {
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  return !st || st.uid === process.getuid?.(); // the id prepareNative's own check uses
}

/**
 * What a trial run leaves in a state dir of the caller's own besides the start memo, so a refused model's can be
 * removed (and scripts/bench-cold.ts can take away what was prepared).
 */
export const TRIAL_LEAVES = ["native", "native.lock", CPU_BACKEND_FILE];

/** The chat template in the file's GGUF header, if any. */
function chatTemplateOf(file: string): string | undefined {
  const fd = fs.openSync(file, "r");
  try { return checkGgufHeader(file, fd).chatTemplate; } finally { fs.closeSync(fd); }
}

/**
 * Tries `file` as models add does (a trial run in a child, then the chat-template trial serve runs at its start);
 * throws ModelPreflightError if either fails. Resolves with what records the results for a model admitted with
 * sha256 `sha256` (call it once the manifest names it).
 */
export async function tryForServe(file: string, shownAs: string, stateDir: string): Promise<(sha256: string) => void> {
  const own = ownDir(stateDir);
  const fresh = TRIAL_LEAVES.filter((f) => !fs.existsSync(path.join(stateDir, f)));
  const template = chatTemplateOf(file);
  let trial: TrialResult;
  try {
    trial = await tryModel(file, shownAs, stateDir, template, own);
  } catch (e) {
    // Refused: what this trial put there goes, so a mistyped new --state-dir is not left behind (add-model.ts).
    if (own) for (const f of fresh) fs.rmSync(path.join(stateDir, f), { recursive: true, force: true });
    throw e;
  }
  return (sha256) => {
    const build = memoBuild();
    if (!own || !build) return;
    const memo = StartMemo.open(stateDir);
    if (template) memo.rememberTemplate(sha256, build);
    if (trial.wrapper) memo.rememberWrapper(sha256, build, trial.wrapper);
    memo.save(); // a state dir it cannot write: the first start works it out, as before
  };
}
