/**
 * How many CPUs this process may really use: the smallest of
 *  - its scheduler affinity (taskset, systemd's CPUAffinity=; os.availableParallelism() reads sched_getaffinity,
 *    and in Bun also a cgroup quota, but not on every runtime or cgroup layout, so the quota is read here as well),
 *  - its cgroup CPU quota (systemd's CPUQuota=, a container's --cpus): cgroup v2 cpu.max or v1 cpu.cfs_quota_us,
 *    the tightest along the path to the root, rounded down,
 *  - the online CPUs.
 *
 * Why it matters: node-llama-cpp's prebuilt llama.cpp is built without OpenMP, so ggml's worker threads spin at
 * their barriers and never yield. More threads than CPUs actually available (a quota of 1 CPU on a 2-core box
 * already counts) makes the spinning threads wait on each other's time slices, and decode collapses (~60× slower
 * measured at 4 threads on 2 cores). So the default thread count is this number, never more.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** The CPUs usable and which limit decided it. */
export interface CpuBudget { cpus: number; limitedBy: "affinity" | "cgroup-quota" | "online"; online: number; affinity: number; quota?: number }

/** Where the limits are read from (tests point these at fixture trees). */
export interface CpuSources { procSelfCgroup?: string; cgroupRoot?: string; affinity?: number; online?: number }

/** The usable CPU count for this process (see the module comment); always ≥ 1. */
export function usableCpus(src: CpuSources = {}): CpuBudget {
  const online = Math.max(1, src.online ?? os.cpus().length);
  const affinity = Math.max(1, src.affinity ?? os.availableParallelism());
  const quota = cgroupQuota(src.procSelfCgroup ?? "/proc/self/cgroup", src.cgroupRoot ?? "/sys/fs/cgroup");
  const quotaCpus = quota === undefined ? Infinity : Math.max(1, Math.floor(quota + 1e-9));
  const cpus = Math.min(online, affinity, quotaCpus);
  // Bun's availableParallelism() already folds a v1/v2 quota in (libuv does), so the quota is named first when it binds.
  const limitedBy = cpus === quotaCpus && cpus < online ? "cgroup-quota" : cpus < online ? "affinity" : "online";
  return { cpus, limitedBy, online, affinity, ...(quota !== undefined && { quota }) };
}

/** The tightest CPU quota (in CPUs, fractional) on this process's cgroup path, v2 or v1; undefined when unlimited. */
export function cgroupQuota(procSelfCgroup: string, cgroupRoot: string): number | undefined {
  let lines: string[];
  try { lines = fs.readFileSync(procSelfCgroup, "utf8").split("\n").filter(Boolean); } catch { return undefined; }
  const limits: number[] = [];
  for (const line of lines) {
    const [, , controllers = "", rel = "/"] = /^(\d+):([^:]*):(.*)$/.exec(line) ?? [];
    if (controllers === "") {
      // cgroup v2 (unified): cpu.max is "max 100000" or "<quota> <period>" in each directory from ours up.
      const base = fs.existsSync(path.join(cgroupRoot, "cgroup.controllers")) ? cgroupRoot : path.join(cgroupRoot, "unified");
      limits.push(...alongPath(base, rel, (d) => {
        const [q, p] = read(path.join(d, "cpu.max"))?.split(/\s+/) ?? [];
        return q && q !== "max" && Number(p) > 0 ? Number(q) / Number(p) : undefined;
      }));
    } else if (controllers.split(",").includes("cpu")) {
      // cgroup v1: cpu.cfs_quota_us (-1 = none) over cpu.cfs_period_us, under the cpu controller's mount.
      const mount = ["cpu", "cpu,cpuacct", "cpuacct,cpu"].map((m) => path.join(cgroupRoot, m)).find((m) => fs.existsSync(m));
      if (!mount) continue;
      limits.push(...alongPath(mount, rel, (d) => {
        const q = Number(read(path.join(d, "cpu.cfs_quota_us"))), p = Number(read(path.join(d, "cpu.cfs_period_us")));
        return q > 0 && p > 0 ? q / p : undefined;
      }));
    }
  }
  return limits.length ? Math.min(...limits) : undefined;
}

function read(file: string): string | undefined {
  try { return fs.readFileSync(file, "utf8").trim(); } catch { return undefined; }
}

/** Applies `limit` to the cgroup directory of `rel` under `base` and each parent up to `base` (a container's view may start anywhere). */
function alongPath(base: string, rel: string, limit: (dir: string) => number | undefined): number[] {
  const out: number[] = [];
  let d = path.join(base, rel);
  for (;;) {
    if (!d.startsWith(base)) break;
    const l = limit(d);
    if (l !== undefined) out.push(l);
    if (d === base) break;
    d = path.dirname(d);
  }
  return out;
}
