/**
 * A model is tried in a child process before it is ever served (like the GPU preflight): load it,
 * decode one token, and render a sample conversation through its chat template. A crafted file
 * that makes llama.cpp abort (ggml asserts kill the whole process; no try/catch survives), or a
 * template that loops or explodes, kills or stalls only the child, and the model is refused with
 * a message naming the stage. The parent gives the template TEMPLATE_MS and its output
 * TEMPLATE_MAX_CHARS; loading gets LOAD_MS (multi-GB models are slow to map on small boxes).
 * serve runs the template part alone (preflightTemplate: no weights, a fraction of a second) for
 * every model at every start, on the template read from the very descriptor it loads.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, JinjaTemplateChatWrapper, LlamaCompletion, LlamaLogLevel, type ChatHistoryItem } from "node-llama-cpp";
import { NATIVE_LOCK_WAIT, prepareNative } from "../engine/native";
import { cpuBackend } from "../engine/cpu-backend";
import { resolveWrapperChoice } from "../engine/template-bound";
import type { WrapperChoice } from "../engine/wrapper-choice";
import { descriptorPath, removeEmptyDirs } from "../util/fs";

export const LOAD_MS = 600_000;
export const TEMPLATE_MS = 10_000;
export const TEMPLATE_MAX_CHARS = 1 << 20;

export class ModelPreflightError extends Error {}

/** How to re-run this program: the compiled binary itself, or bun with the entry script from source. */
function selfArgv(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:\\~BUN");
  return compiled ? [process.execPath] : [process.execPath, path.join(import.meta.dir, "..", "main.ts")];
}

const SAMPLE: ChatHistoryItem[] = [
  { type: "system", text: "You are a helpful assistant." },
  { type: "user", text: "Hello! What is 2 + 2?" },
  { type: "model", response: ["2 + 2 = 4."] },
  { type: "user", text: "Thanks. And 3 + 3?" },
  { type: "model", response: [] },
];

/**
 * Child side (`models preflight FILE --native-dir DIR`): prints a line per stage so the parent knows how far it got,
 * and before "preflight ok" the chat wrapper a first start would resolve (`wrapper {json}`, none when it would
 * remember none), which it rendered the sample with.
 */
export async function runPreflightChild(file: string, nativeDir: string): Promise<void> {
  // Another process (serve, a second models add) holding the libraries' lock: said to the parent ("lock FILE", then
  // "stage waiting"), which tells the user and stops the load clock until "stage start" says the wait is over.
  let waited = false;
  const native = await prepareNative(nativeDir, undefined, undefined, { onWait: (lock) => { waited = true; console.log(`lock ${lock}\nstage waiting`); } });
  if (waited) console.log("stage start");
  // The CPU variant loaded as serve loads it, and its pick remembered beside the libraries (cpu-backend.ts): under the
  // state dir of the account's own server (preflightModel ownState), its first start then loads that one variant.
  const cpu = native ? cpuBackend(nativeDir, native.dir, false) : undefined;
  globalThis.__APPLIANCE_CPU_BACKEND__ = cpu?.hook;
  const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
    maxThreads: 1, logLevel: LlamaLogLevel.error }).finally(() => { globalThis.__APPLIANCE_CPU_BACKEND__ = undefined; });
  cpu?.settle();
  console.log("stage load");
  // Through a descriptor path, as serve loads it: node-llama-cpp then sees no file name, so the wrapper resolved below
  // is the one serve resolves (template-bound.ts fileNameOf).
  const fd = fs.openSync(file, "r");
  const model = await llama.loadModel({ modelPath: descriptorPath(fd), gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: Math.max(16, Math.min(256, model.trainContextSize)), sequences: 1, threads: 1 });
  console.log("stage decode");
  const completion = new LlamaCompletion({ contextSequence: ctx.getSequence(), autoDisposeSequence: true });
  await completion.generateCompletion("Hello", { maxTokens: 1 });
  console.log("stage template");
  const { chatWrapper, choice } = resolveWrapperChoice(model);
  const { contextText } = chatWrapper.generateContextState({ chatHistory: SAMPLE });
  const rendered = contextText.toString();
  if (rendered.length > TEMPLATE_MAX_CHARS) throw new ModelPreflightError(`its chat template rendered ${rendered.length} characters for a 4-message sample`);
  if (choice) console.log(`wrapper ${JSON.stringify(choice)}`);
  console.log("preflight ok");
  completion.dispose();
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  fs.closeSync(fd);
}

/** Child side (`models preflight --template-only`, template on stdin): renders the sample with the template as written. */
export async function runTemplateChild(): Promise<void> {
  const template = await Bun.stdin.text();
  console.log("stage template");
  const { contextText } = new JinjaTemplateChatWrapper({ template }).generateContextState({ chatHistory: SAMPLE });
  const rendered = contextText.toString();
  if (rendered.length > TEMPLATE_MAX_CHARS) throw new ModelPreflightError(`its chat template rendered ${rendered.length} characters for a 4-message sample`);
  console.log("preflight ok");
}

/** Trial children running now: stopTrials() ends them (an interrupted `models add` left its trial load running). */
const trials = new Set<{ kill: (signal?: number | NodeJS.Signals) => void }>();
function tracked<T extends { kill: (signal?: number | NodeJS.Signals) => void; exited: Promise<number> }>(proc: T): T {
  trials.add(proc);
  void proc.exited.finally(() => trials.delete(proc));
  return proc;
}

/** Kills every trial child still running (SIGKILL): for a command that is itself being stopped by a signal. */
export function stopTrials() {
  for (const p of trials) p.kill("SIGKILL");
  trials.clear();
}

/** Parent side for serve: the template alone, in a child; throws ModelPreflightError if it loops, explodes or fails. */
export async function preflightTemplate(template: string, shownAs: string, templateMs = TEMPLATE_MS): Promise<void> {
  const proc = tracked(Bun.spawn([...selfArgv(), "models", "preflight", "--template-only"], {
    stdin: new TextEncoder().encode(template), stdout: "pipe", stderr: "pipe",
  }));
  await watch(proc, { loadMs: LOAD_MS, templateMs }, shownAs);
}

const STAGE_TEXT: Record<string, string> = {
  start: "while starting", waiting: "while waiting for another process's lock on the native libraries", load: "while loading it", decode: "while decoding a token", template: "while rendering its chat template",
};

/** What a passed trial run learned: the chat wrapper a first start on these bytes would resolve, if it would remember one. */
export interface TrialResult { wrapper?: WrapperChoice }

/**
 * Parent side: runs the child on `file`; throws ModelPreflightError naming the stage where it failed.
 * `ownState`: workDir is the state dir of the server this account runs (its own dir), so the child unpacks the
 * libraries where that server's start looks for them (<stateDir>/native, prepareNative) and they are kept: its first
 * start then only checks them.
 */
export async function preflightModel(file: string, limits = { loadMs: LOAD_MS, templateMs: TEMPLATE_MS }, shownAs = file,
  workDir = os.tmpdir(), ownState = false): Promise<TrialResult> {
  const made = fs.mkdirSync(workDir, { recursive: true, mode: 0o700 }); // the first dir it created, if any
  if (ownState) return run(file, workDir, limits, shownAs);
  // Otherwise into a private temp dir under workDir (the CLI passes the state dir: /tmp is often mounted noexec),
  // never into <stateDir>/native of a dir another account owns (root for the installed service), where a root-owned
  // dir would stop the service from starting. Removed afterwards, with the dirs made for it (install --model on a
  // new --root: a refused model left var/lib/appliance behind, where install promises nothing written).
  const nativeDir = fs.mkdtempSync(path.join(workDir, ".preflight-"));
  try { return await run(file, nativeDir, limits, shownAs); } finally {
    fs.rmSync(nativeDir, { recursive: true, force: true });
    if (made) removeEmptyDirs(workDir, made);
  }
}

/**
 * What a model passes before it is served (models add, install --model): the trial run, then serve's own template
 * trial on `template` (the file's chat template, read by the caller's header check). One rule for both callers:
 * install had dropped the second when models add took it on.
 */
export async function tryModel(file: string, shownAs: string, workDir: string, template: string | undefined, ownState = false): Promise<TrialResult> {
  const trial = await preflightModel(file, undefined, shownAs, workDir, ownState);
  if (template) await preflightTemplate(template, shownAs);
  return trial;
}

async function run(file: string, nativeDir: string, limits: { loadMs: number; templateMs: number }, shownAs: string): Promise<TrialResult> {
  const proc = tracked(Bun.spawn([...selfArgv(), "models", "preflight", file, "--native-dir", nativeDir], {
    stdout: "pipe", stderr: "pipe", env: { ...process.env, GGML_NO_BACKTRACE: "1" }, // no debugger attached to an abort
  }));
  // Said on stderr (models add, install --model): the trial would otherwise stall silently behind a stopped or hung
  // process holding the lock (a serve's start, another models add on this state dir).
  const out = await watch(proc, limits, shownAs, (lock) => console.error(`${NATIVE_LOCK_WAIT}: it holds ${lock}`));
  const line = /^wrapper (\{.*\})$/m.exec(out)?.[1];
  let wrapper: WrapperChoice | undefined;
  try { wrapper = line ? JSON.parse(line) as WrapperChoice : undefined; } catch { /* none remembered */ }
  return { wrapper };
}

/** Follows the child's stage lines, arms the template timer at "stage template", and turns any failure into an error. */
async function watch(proc: Bun.Subprocess<"ignore" | "pipe" | Uint8Array, "pipe", "pipe">, limits: { loadMs: number; templateMs: number },
  shownAs: string, onWait?: (lockFile: string) => void): Promise<string> {
  let stage = "start", out = "", timedOut = "";
  const kill = (why: string) => { timedOut = why; proc.kill("SIGKILL"); };
  const loadClock = () => setTimeout(() => kill(`did not load within ${limits.loadMs / 1000} s`), limits.loadMs);
  let timer = loadClock();
  const err = new Response(proc.stderr).text();
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
    const reached = [...out.matchAll(/^stage (\w+)$/gm)].at(-1)?.[1];
    if (reached && reached !== stage) {
      // The time spent waiting for another process's lock is not the model's: its load gets the whole limit after.
      if (stage === "waiting") { clearTimeout(timer); timer = loadClock(); }
      stage = reached;
      if (stage === "waiting") { clearTimeout(timer); onWait?.(/^lock (.+)$/m.exec(out)?.[1] ?? "the lock"); }
      if (stage === "template") {
        clearTimeout(timer);
        timer = setTimeout(() => kill(`its chat template did not finish a 4-message sample within ${limits.templateMs / 1000} s`), limits.templateMs);
      }
    }
  }
  const code = await proc.exited;
  clearTimeout(timer);
  if (code === 0 && /^preflight ok$/m.test(out)) return out;
  const detail = (await err).trim().split("\n").filter((l) => l && !/^\s+at /.test(l)).slice(-2).join(" | ").slice(0, 400);
  const how = timedOut || (proc.signalCode ? `llama.cpp killed the process (${proc.signalCode})` : `it failed (exit ${code})`);
  // Failed in its own start, before it read a byte of the model (e.g. no space to unpack the native libraries under
  // the state dir): said so, not "the model is refused" (a full disk read as a bad model).
  if (stage === "start" && !timedOut && !proc.signalCode) {
    throw new ModelPreflightError(`could not try ${shownAs}: the trial run failed while starting, before it read the model (exit ${code})${detail ? `: ${detail}` : ""}`);
  }
  throw new ModelPreflightError(`${shownAs} is refused: in a trial run ${STAGE_TEXT[stage] ?? `at ${stage}`}, ${how}${detail && !timedOut ? `: ${detail}` : ""}`);
}
