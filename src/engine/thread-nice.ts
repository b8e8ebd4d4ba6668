/**
 * Inference threads run at a lower priority (a higher nice value) than the event loop's thread.
 *
 * Why: a decode step keeps every inference thread busy (ggml's threads spin at their barriers), so with as many
 * threads as CPUs the event loop's thread, woken by a timer, a socket or a finished sampling, waited in the run
 * queue behind them. bench-lag at 155 M (4 streams, 2 threads on 2 CPUs): the ticks later than 5 ms came right after
 * a decode step was dispatched, and nearly all of their time was run-queue wait (/proc/self/schedstat), not our
 * JavaScript (e.g. 784 of 811 ms). At a lower priority the inference threads yield the CPU to the event loop when it
 * wakes; the event loop's own CPU time, the inference threads' total work and the process's share of the machine
 * (its cgroup or session group) stay the same.
 *
 * Which threads: Bun's work pool ("Bun Pool N": node-llama-cpp's decode and sampling run there as N-API async work,
 * and the ggml threads a decode starts inherit the name and the priority of the thread that starts them) and the
 * built engine's decode thread with its OpenMP team ("llama-decode", engine-decode-thread.ts). Not the JavaScript
 * engine's own helpers (garbage-collection and JIT threads): the event loop waits for those. Linux only (nice is
 * per thread there); raising a nice value needs no privilege.
 */
import fs from "node:fs";
import os from "node:os";
import { DECODE_THREAD_NAME } from "./engine-decode-thread";

/** Nice steps below the event loop's thread (10: about a tenth of its CPU weight when both want a CPU). */
export const INFERENCE_NICE_STEPS = 10;

const NAMES = ["Bun Pool", DECODE_THREAD_NAME];
const TASKS = "/proc/self/task";

/**
 * Lowers the priority of the inference threads that exist now and have not been lowered yet. Cheap when nothing
 * changed (one directory read): call it when threads may have started (after a model loads, around a generation).
 * Returns how many threads it lowered (one started by a lowered thread already is).
 */
export function lowerInferenceThreads(state: { tasks: number; done: Set<number> } = shared): number {
  if (process.platform !== "linux") return 0;
  let tasks: string[];
  try {
    tasks = fs.readdirSync(TASKS);
  } catch {
    return 0;
  }
  if (tasks.length === state.tasks) return 0;
  state.tasks = tasks.length;
  const live = new Set(tasks.map(Number));
  for (const tid of state.done) if (!live.has(tid)) state.done.delete(tid);
  let own: number;
  try {
    own = os.getPriority(process.pid);
  } catch {
    return 0;
  }
  const nice = Math.min(19, own + INFERENCE_NICE_STEPS);
  let lowered = 0;
  for (const tid of live) {
    if (tid === process.pid || state.done.has(tid)) continue;
    let name: string;
    try {
      name = fs.readFileSync(`${TASKS}/${tid}/comm`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    if (!NAMES.some((n) => name.startsWith(n))) continue;
    try {
      if (os.getPriority(tid) < nice) {
        os.setPriority(tid, nice);
        lowered++;
      }
      state.done.add(tid);
    } catch {
      // ended meanwhile, or not allowed: it keeps its priority
    }
  }
  return lowered;
}

const shared = { tasks: 0, done: new Set<number>() };
