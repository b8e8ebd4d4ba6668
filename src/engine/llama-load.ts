/**
 * Opening node-llama-cpp and loading one model with its context: what LlamaEngine holds per model, and how it is
 * made (the context batches `parallel` sequences, gathers a burst's prompts, keeps streams in one step).
 */
import fs from "node:fs";
import {
  getLlama, LlamaLogLevel,
  type ChatWrapper, type Llama, type LlamaContext, type LlamaEmbeddingContext, type LlamaModel,
} from "node-llama-cpp";
import type { Logger } from "../log/logger";
import type { CpuBackendChoice } from "./cpu-backend";
import type { ModelInfo } from "./engine";
import { beginningToken, readVocabulary } from "./llama-options";
import { Scheduler } from "./scheduler";
import { syncBatches } from "./batch-sync";
import { gatherSchedule, type Arrivals } from "./arrivals";
import { defaultTemplateLimits, probeToolResults, resolveBoundedWrapper, type TemplateBound, type TemplateLimits } from "./template-bound";
import { llama3Wrapper } from "./plain-wrapper";
import { withGenerationPrompt, writesEmptyThought } from "./generation-prompt";
import { ToolResultsOf, withToolResults } from "./tool-results";
import { whenContextBuilds } from "./context-init";
import { governThreads, promptsGetAllCpus, promptsOnAllThreads, tuneSteps, withFullThreads } from "./thread-policy";
import { processCpus } from "./thread-sources";
import { StepTuner } from "./thread-tuner";
import { SequencePool } from "./sequence-pool";
import type { WrapperMemory } from "./wrapper-choice";

/** `wrapper`: the chat wrapper remembered for this file at an earlier start, and where to report a fresh one (wrapper-choice.ts). */
export interface ModelSource { id: string; path: string; wrapper?: WrapperMemory }

export interface LlamaEngineOptions {
  models: ModelSource[];
  /** The most inference threads (the usable CPUs, or the configured count below them). */
  threads: number;
  /** Config `threads: 0`: the count follows free CPU between 1 and `threads`, re-decided every 250 ms (thread-governor.ts). */
  adaptiveThreads?: boolean;
  /**
   * The libraries are an OpenMP build (a built engine): with adaptive threads, decode steps take the governed count
   * as it is, not the step tuner's (thread-tuner.ts: learnt for the prebuilt engine, whose threads spin; an OpenMP team
   * resized between steps of 1 and 2 threads made the default policy 0.77-0.90 of llama-server where 2 fixed threads
   * gave 0.96-1.13, bench-peer 28 M).
   */
  openmp?: boolean;
  ctxSize: number;
  parallel: number;
  maxQueue: number;
  gpu: "cuda" | "vulkan" | "metal" | false;
  gpuLayers?: "auto" | number;
  log: Logger;
  /** Called as each model loads (0-1): serve turns it into systemd start-timeout extensions. */
  onProgress?: (status: string) => void;
  /** The CPU variant library to load (engine/cpu-backend.ts); absent: node-llama-cpp's own loading. */
  cpuBackend?: CpuBackendChoice;
  /** Keep sequences between generations and reuse a prompt's evaluated start within a cache scope (config promptCache; absent: on). */
  promptCache?: boolean;
  /** Bounds on rendering a Jinja chat template per request (config limits.chatTemplateMs/Chars; absent: the schema's defaults). */
  chatTemplate?: TemplateLimits;
}

/** One loaded model, with everything the engine keeps for it. */
export interface Loaded {
  info: ModelInfo;
  model: LlamaModel;
  context: LlamaContext;
  scheduler: Scheduler;
  /** The context's sequences, kept between generations (prompt reuse). */
  sequences: SequencePool;
  special: string[];
  vocabularySize: number;
  /** Resolved once per model: a template resolution per request blocked the event loop for 150+ ms. */
  chatWrapper: ChatWrapper;
  /** For chats without tools where node-llama-cpp's format differs from the template there (plain-wrapper.ts). */
  plainChatWrapper?: ChatWrapper;
  /** For a thinking model asked not to think, where its template writes the empty thought block itself (generation-prompt.ts). */
  noThinkWrapper?: ChatWrapper;
  /** Set when chatWrapper renders the model's own Jinja template: each chat is rendered first under a deadline. */
  templateBound?: TemplateBound;
  /** How the template writes a tool's text, worked out before the first chat that holds one is rendered (tool-results.ts). */
  toolResults: ToolResultsOf;
  embedding?: Promise<LlamaEmbeddingContext>;
  embedScheduler: Scheduler;
  /** Sequences past their first sampled token (0: the context is idle, so a burst's first decode may gather). */
  busy: { generating: number };
  /** A generation has had a sequence: its first evaluation is paid, and a warm-up would only clear someone's kept prompt. */
  evaluated?: boolean;
}

const LOG_LEVEL: Record<string, "error" | "warn" | "info" | "debug"> = {
  [LlamaLogLevel.fatal]: "error", [LlamaLogLevel.error]: "error", [LlamaLogLevel.warn]: "warn",
  [LlamaLogLevel.info]: "debug", [LlamaLogLevel.log]: "debug", [LlamaLogLevel.debug]: "debug",
};

/** The llama.cpp binding: prebuilt (or embedded) libraries only, never a build or download; its log into ours. */
export async function openLlama(opts: LlamaEngineOptions): Promise<Llama> {
  const log = opts.log;
  globalThis.__APPLIANCE_CPU_BACKEND__ = opts.cpuBackend?.hook; // read by node-llama-cpp's (patched) Llama constructor
  const cpus = processCpus(); // before the libraries load: a bound libgomp pins this thread to one CPU (thread-sources.ts)
  const llama = await getLlama({
    gpu: opts.gpu,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    maxThreads: opts.threads,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      // Under the unit's ProcSubset=pid, /proc/meminfo is hidden; the addon then says so at error level,
      // harmlessly (memory is read through sysinfo instead). Keep it out of the operator's error logs.
      const quiet = /Failed to get wired system memory/.test(message);
      log[quiet ? "debug" : LOG_LEVEL[level] ?? "debug"]({ src: "llama.cpp" }, message.trim());
    },
  }).finally(() => { globalThis.__APPLIANCE_CPU_BACKEND__ = undefined; });
  if (opts.cpuBackend) log.info(opts.cpuBackend.settle(), "cpu backend");
  if (opts.adaptiveThreads) governThreads(llama, opts.threads, log, undefined, undefined, cpus);
  opts.onProgress?.("llama.cpp binding opened"); // start phases: what follows is node-llama-cpp's checks before a model loads
  return llama;
}

/** The start progress said when llama.cpp begins building a model's context (serve imports its HTTP app then). */
export const CONTEXT_BUILDING = "llama.cpp is building the context";

/** Loads one model and its context of `parallel` sequences. */
export async function loadModel(llama: Llama, source: ModelSource, opts: LlamaEngineOptions, arrivals: Arrivals): Promise<Loaded> {
  const model = await llama.loadModel({ modelPath: source.path, gpuLayers: opts.gpu ? opts.gpuLayers ?? "auto" : 0,
    onLoadProgress: (p) => opts.onProgress?.(`loading model ${source.id}: ${Math.round(p * 100)}%`) });
  opts.onProgress?.(`creating the context for ${source.id}`);
  const contextSize = Math.min(opts.ctxSize, model.trainContextSize);
  const busy = { generating: 0 };
  const create = () => withFullThreads(llama, () => model.createContext({ contextSize, sequences: opts.parallel, threads: opts.threads,
    batching: { dispatchSchedule: gatherSchedule(arrivals, () => busy.generating === 0) } }));
  const context = await whenContextBuilds(llama, model, create, () => opts.onProgress?.(`${CONTEXT_BUILDING} for ${source.id}`));
  opts.onProgress?.(`context created for ${source.id}`);
  // Concurrent streams share each decode step (without it one sequence kept missing the step: 3 of 4 per step).
  if (opts.parallel > 1 && !syncBatches(context)) opts.log.warn({ model: source.id }, "node-llama-cpp internals changed: concurrent streams are decoded less batched");
  // Adaptive threads on the CPU: each small step's count is learnt from step times (thread-tuner.ts).
  const stepTuner = !!opts.adaptiveThreads && !opts.gpu && !opts.openmp;
  if (stepTuner && !tuneSteps(context, new StepTuner({}, (c) => opts.log.debug({ model: source.id, ...c }, "decode step threads"))))
    opts.log.warn({ model: source.id }, "node-llama-cpp internals changed: decode steps use the governed thread count untuned");
  // A built OpenMP engine under the adaptive policy: prompts on every usable CPU, decode steps on the governor's count.
  const promptsOnAll = promptsGetAllCpus(opts);
  if (promptsOnAll && !promptsOnAllThreads(context, opts.threads))
    opts.log.warn({ model: source.id }, "node-llama-cpp internals changed: prompts use the governed thread count");
  const stat = fs.statSync(source.path);
  const limits = opts.chatTemplate ?? defaultTemplateLimits();
  const resolved = resolveBoundedWrapper(model, limits, source.wrapper);
  const { templateBound, remembered } = resolved;
  // Tool results as the model's template writes a tool message's text (tool-results.ts): the template is asked in a
  // worker of its own at the first chat with one; a Jinja template's render workers are handed the answer.
  const template = model.fileInfo.metadata?.tokenizer?.chat_template;
  const toolResults = new ToolResultsOf(async () => (template ? probeToolResults(template, limits.ms) : undefined));
  if (templateBound) templateBound.toolResults = () => toolResults.get();
  const results = <W extends ChatWrapper>(w: W) => withToolResults(w, () => toolResults.get());
  const chatWrapper = withGenerationPrompt(results(llama3Wrapper(resolved.chatWrapper, true) ?? resolved.chatWrapper));
  const plain = llama3Wrapper(resolved.chatWrapper, false);
  // Asked not to think, a template that writes the empty thought block itself keeps it (generation-prompt.ts).
  const noThinkWrapper = writesEmptyThought(resolved.chatWrapper) ? withGenerationPrompt(results(resolved.chatWrapper), true) : undefined;
  // chatWrapper: rebuilt from what an earlier start remembered (integrity/start-memo.ts), or resolved at this start;
  // wrapper: which one renders the chats (the model's own Jinja template, or a built-in node-llama-cpp judged the
  // same), and whether it has thoughts (reasoning_content): a user could not tell before (model-family run).
  opts.log.info({ model: source.id, contextSize, parallel: opts.parallel, threads: opts.threads, adaptiveThreads: !!opts.adaptiveThreads, stepTuner, promptsOnAllThreads: promptsOnAll, backend: llama.gpu || "cpu",
    chatWrapper: remembered ? "remembered" : "resolved", wrapper: chatWrapper.wrapperName, reasoning: !!chatWrapper.settings.segments?.thought }, "model loaded");
  return {
    info: { id: source.id, created: Math.floor(stat.mtimeMs / 1000), contextSize, sizeBytes: stat.size, beginningToken: beginningToken(model) ?? undefined },
    model, context,
    scheduler: new Scheduler(opts.parallel, opts.maxQueue),
    sequences: new SequencePool(context, opts.promptCache ?? true),
    ...(({ special, size }) => ({ special, vocabularySize: size }))(readVocabulary(model)),
    chatWrapper, plainChatWrapper: plain && withGenerationPrompt(results(plain)), noThinkWrapper, templateBound, toolResults,
    embedScheduler: new Scheduler(1, opts.maxQueue),
    busy,
  };
}
