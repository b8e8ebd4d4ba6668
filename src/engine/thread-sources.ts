/**
 * What the thread governor (thread-governor.ts) reads: CPU time spent on the CPUs this process may run on (all
 * processes, from /proc/stat) and by this process itself (all its threads, dead ones included, from /proc/self/stat).
 * Their difference over a window is how busy everything else keeps those CPUs.
 */
import fs from "node:fs";

/** Cumulative CPU seconds; undefined when the source cannot be read (no /proc, or hidden). */
export interface CpuTimeSources {
  /** Busy time (everything but idle and iowait) summed over the CPUs in `cpus`. */
  busySeconds(): number | undefined;
  /** This process's user + system time. */
  ownSeconds(): number | undefined;
  /** Monotonic clock in ms. */
  now(): number;
}

/** Linux reports both files in USER_HZ ticks, 100 per second on every architecture the engine ships for. */
const TICKS_PER_SECOND = 100;

/** The CPU ids in a kernel list such as "0-3,8,10-11" (Cpus_allowed_list in /proc/self/status). */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(",").filter(Boolean)) {
    const [a, b = a] = part.split("-").map(Number);
    if (!Number.isInteger(a) || !Number.isInteger(b)) continue;
    for (let c = a!; c <= b!; c++) out.push(c);
  }
  return out;
}

/** The CPUs this process may run on (its affinity), or undefined when /proc/self/status does not say. */
export function allowedCpus(statusFile = "/proc/self/status"): number[] | undefined {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(statusFile, "utf8"));
    const cpus = m ? parseCpuList(m[1]!) : [];
    return cpus.length ? cpus : undefined;
  } catch { return undefined; }
}

let beforeEngine: number[] | undefined | null = null;
/**
 * The CPUs this process may use as read before an engine's libraries loaded (the first call's allowedCpus(), kept):
 * libgomp, when a built engine runs with OMP_PROC_BIND (engine-build-env.ts), binds the thread that loads it, the
 * main thread, to one CPU, and /proc/self/status shows the main thread's set. Read after the load, the thread
 * governor counted one CPU on a 2-CPU machine and held the adaptive policy at 1 thread (bench-peer, 28 M, built
 * engine: 4 streams 0.76 of llama-server without --threads, 1.37 with --threads 2).
 */
export function processCpus(): number[] | undefined {
  if (beforeEngine === null) beforeEngine = allowedCpus();
  return beforeEngine;
}

/** Busy ticks over `cpus` from /proc/stat text ("cpuN user nice system idle iowait irq softirq steal …"). */
export function busyTicks(stat: string, cpus: ReadonlySet<number>): number | undefined {
  let sum = 0, seen = 0;
  for (const line of stat.split("\n")) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m || !cpus.has(Number(m[1]))) continue;
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = m[2]!.trim().split(/\s+/).map(Number);
    sum += user + nice + system + irq + softirq + steal; // guest time is already inside user
    seen++;
  }
  return seen ? sum : undefined;
}

/** utime + stime ticks from /proc/<pid>/stat text (fields 14 and 15; the command name may hold spaces). */
export function ownTicks(stat: string): number | undefined {
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]), stime = Number(rest[12]); // fields 14 and 15, counted from field 3 (state)
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
}

/** The live sources for this process: /proc/stat over its allowed CPUs, /proc/self/stat, performance.now(). */
export function procSources(cpus: number[] | undefined = allowedCpus(), procRoot = "/proc"): CpuTimeSources {
  const set = cpus ? new Set(cpus) : undefined;
  const read = (file: string) => { try { return fs.readFileSync(file, "utf8"); } catch { return undefined; } };
  return {
    busySeconds() {
      const text = set && read(`${procRoot}/stat`);
      const t = text ? busyTicks(text, set!) : undefined;
      return t === undefined ? undefined : t / TICKS_PER_SECOND;
    },
    ownSeconds() {
      const text = read(`${procRoot}/self/stat`);
      const t = text ? ownTicks(text) : undefined;
      return t === undefined ? undefined : t / TICKS_PER_SECOND;
    },
    now: () => performance.now(),
  };
}
