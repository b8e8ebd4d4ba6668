/**
 * The thread governor (thread-governor.ts) attached to node-llama-cpp: one per Llama, since every context of a
 * Llama takes its threads from the Llama's thread splitter. The governor sets `llama.maxThreads`, which node-llama-cpp
 * reads before each decode step (ThreadsSplitter allocation, then `setThreads` on the context), so a change applies
 * from the next step on, to every model and embedding context, without reloading anything.
 * It samples on a timer, not per request: a request must start with the CPUs' state of the last moments, not an
 * average since the previous request (a busy spell long over would cost it a thread). Reading two /proc files every
 * 250 ms costs ~20-40 µs of CPU each time, also when idle.
 */
import type { Llama, LlamaContext } from "node-llama-cpp";
import type { Logger } from "../log/logger";
import { GOVERNOR_WINDOW_MS, ThreadGovernor } from "./thread-governor";
import { SMALL_STEP, type StepTuner } from "./thread-tuner";
import { processCpus, procSources, type CpuTimeSources } from "./thread-sources";

interface Governed { governor: ThreadGovernor; max: number; holds: number }
const governed = new WeakMap<Llama, Governed>();

/**
 * Starts governing `llama`'s threads within 1…max (max: the usable CPUs); logs each change at debug level. When the
 * CPU load cannot be read the count stays at max and reading is retried with back-off: the first loss is a warning,
 * the first recovery an info line, later ones (a source that comes and goes) debug lines.
 */
export function governThreads(llama: Llama, max: number, log: Logger, src?: CpuTimeSources, cpus?: number,
  allowed: number[] | undefined = processCpus()): ThreadGovernor {
  log.debug({ cpus: allowed ?? "unknown", max }, "cpu governor: free CPU counted over these CPUs");
  const entry: Governed = { max, holds: 0, governor: undefined! };
  const said = { lost: false, back: false };
  entry.governor = new ThreadGovernor({ max, cpus: cpus ?? allowed?.length ?? max }, src ?? procSources(allowed), (threads, change) => {
    if (entry.holds === 0) llama.maxThreads = threads;
    if (change) log.debug(change, "cpu threads changed");
  }, (change) => {
    const fields = { threads: max, failures: change.failures, ...(change.retryMs !== undefined && { retryMs: change.retryMs }) };
    if (!change.readable && !said.lost) {
      said.lost = true;
      log.warn(fields, "cpu load unreadable (/proc/stat, /proc/self/stat): inference threads fixed at the usable CPUs until it can be read again (retrying with back-off)");
    } else if (change.readable && !said.back) {
      said.back = true;
      log.info(fields, "cpu load readable again: inference threads follow free CPU");
    } else log.debug(fields, change.readable ? "cpu load readable again" : "cpu load unreadable");
  });
  governed.set(llama, entry);
  const timer = setInterval(() => { if (entry.holds === 0) entry.governor.update(); }, GOVERNOR_WINDOW_MS);
  timer.unref(); // never what keeps the process alive
  llama.onDispose.createListener(() => clearInterval(timer));
  return entry.governor;
}

/**
 * Runs `create` (a context's creation) with the full thread count: node-llama-cpp caps a new context's thread count
 * at `llama.maxThreads` for good, so a context made while the governor had lowered it would never use more.
 */
export async function withFullThreads<T>(llama: Llama, create: () => Promise<T>): Promise<T> {
  const g = governed.get(llama);
  if (!g) return create();
  g.holds++;
  llama.maxThreads = g.max;
  try { return await create(); } finally {
    if (--g.holds === 0) llama.maxThreads = g.governor.current;
  }
}

type AddonContext = { initBatch?: (size: number) => unknown; setThreads?: (n: number) => unknown; decodeBatch?: () => Promise<unknown> };

/**
 * Hooks each decode step of `context`: `choose(size, n)` gives the thread count of a step of `size` tokens that the
 * thread splitter granted n (the governor's count), `record` hears how long the step took on it. This hooks
 * node-llama-cpp internals (3.x: `LlamaContext._ctx`, whose `initBatch(size)`, `setThreads(n)` and `decodeBatch()`
 * the batch loop calls in that order); false, and nothing changed, when they are not there.
 */
function hookSteps(context: LlamaContext, choose: (size: number, granted: number) => number,
  record?: (size: number, threads: number, ms: number) => void): boolean {
  const ctx = (context as unknown as { _ctx?: AddonContext })._ctx;
  const { initBatch, setThreads, decodeBatch } = ctx ?? {};
  if (!ctx || typeof initBatch !== "function" || typeof setThreads !== "function" || typeof decodeBatch !== "function") return false;
  let size = 0, threads = 0;
  // The addon's methods are read-only on its prototype: plain assignment throws, an own property shadows them.
  const own = (name: keyof AddonContext, value: unknown) => Object.defineProperty(ctx, name, { value, writable: true, configurable: true });
  own("initBatch", (n: number) => { size = n; return initBatch.call(ctx, n); });
  own("setThreads", (n: number) => { threads = choose(size, n); return setThreads.call(ctx, threads); });
  if (record) {
    own("decodeBatch", async () => {
      const t0 = performance.now();
      const out = await decodeBatch.call(ctx);
      if (threads > 0) record(size, threads, performance.now() - t0);
      threads = 0; // a step without setThreads (no thread limit) is not attributed to the last count
      return out;
    });
  }
  return true;
}

/** Lets `tuner` pick the thread count of each decode step of `context` (thread-tuner.ts), below what the governor grants. */
export function tuneSteps(context: LlamaContext, tuner: StepTuner): boolean {
  return hookSteps(context, (size, n) => tuner.choose(size, n), (size, threads, ms) => tuner.record(size, threads, ms));
}

/**
 * A built OpenMP engine under the adaptive policy: a prompt step (more than SMALL_STEP tokens) runs on all `max`
 * usable CPUs whatever the governor's count; decode steps on the governor's count. Its threads wait passively, so a
 * prompt's large matrices gain from a second thread even next to a busy neighbour, where decode steps lose
 * (bench-threads, 28 M, built engine, 2 CPUs, one burner: prefill 1,807 tok/s on 2 threads vs 1,570 on 1, the
 * default 1,564 on the governor's 1; decode 131 on 2 vs 145 on 1; two burners: prefill 1,042 vs 1,048, decode 32 vs
 * 105). The team is resized once per prompt, not from step to step (which cost the step tuner 0.77-0.90 of
 * llama-server on this engine).
 */
export function promptsOnAllThreads(context: LlamaContext, max: number): boolean {
  return hookSteps(context, (size, n) => (size > SMALL_STEP ? Math.max(n, max) : n));
}

/** Whether promptsOnAllThreads applies: a built OpenMP engine, on the CPU, under the adaptive policy. */
export function promptsGetAllCpus(o: { adaptiveThreads?: boolean; gpu?: unknown; openmp?: boolean }): boolean {
  return !!o.adaptiveThreads && !o.gpu && !!o.openmp;
}
