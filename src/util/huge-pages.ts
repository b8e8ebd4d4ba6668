/**
 * llama.cpp allocates the KV cache (and its other CPU buffers) with glibc's malloc and zeroes it at once: 24 MiB for
 * the 28 M benchmark model at 2,048 tokens, ~6,000 page faults that took 100-140 ms of every cold start on this VM,
 * llama-server's too (`context` in serve's `start phases`, scripts/bench-cold.ts). With the glibc tunable
 * glibc.malloc.hugetlb=1, malloc marks its large mappings for transparent huge pages (madvise), so the same buffer
 * faults in 2 MiB pieces: the context phase went 105-135 → 28-36 ms.
 *
 * glibc reads tunables once, when the process starts, so `serve` re-executes itself with the tunable added (same
 * process id, file descriptors and arguments; before anything else is opened or started). Nothing is done when
 * the variable already names glibc.malloc.hugetlb (the operator's choice, including =0), when THP is off on this
 * machine, outside Linux, or when run from the sources (the tests).
 *
 * Everything here runs twice on a direct `serve` start, so it stays cheap: node:fs is loaded only to read the THP mode,
 * and that is read only when the environment leaves something to do (not under the unit, which sets the tunable).
 */
export const HUGETLB_TUNABLE = "glibc.malloc.hugetlb=1";
/** Set in the re-executed process: never a second re-exec, whatever became of GLIBC_TUNABLES. */
export const REEXEC_MARK = "APPLIANCE_REEXEC";

/** The environment to re-execute with, or null when there is nothing to do. */
export function hugePageEnv(env: Record<string, string | undefined>, platform: string, thpMode: () => string | undefined): Record<string, string> | null {
  if (platform !== "linux" || env[REEXEC_MARK]) return null;
  const tunables = env.GLIBC_TUNABLES ?? "";
  if (/(^|:)glibc\.malloc\.hugetlb=/.test(tunables)) return null;
  const mode = thpMode();
  if (mode === "never" || mode === undefined) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  out.GLIBC_TUNABLES = tunables ? `${tunables}:${HUGETLB_TUNABLE}` : HUGETLB_TUNABLE;
  out[REEXEC_MARK] = "1";
  return out;
}

/** The kernel's THP mode: always, madvise or never (undefined: no THP support, or unreadable). */
export function readThpMode(file = "/sys/kernel/mm/transparent_hugepage/enabled"): string | undefined {
  try {
    // Loaded here, not at the top: the unit's start (tunable already set) never reads the mode. A synchronous read:
    // Bun.file's would start Bun's thread pool in a process about to be replaced (measured slower overall).
    const fs = require("node:fs") as typeof import("node:fs");
    return /\[(\w+)\]/.exec(fs.readFileSync(file, "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Re-executes the compiled binary with the tunable when hugePageEnv says so; returns only when it did not (from the
 * sources, nothing to do, or execve refused — the start then goes on without huge pages).
 */
export function reexecWithHugePages(argv = process.argv) {
  // In the compiled binary argv[1] is the bundle's virtual path; from the sources it is a .ts file bun runs.
  if (!argv[1]?.startsWith("/$bunfs/") || typeof process.execve !== "function") return;
  if (!hugePageEnv(process.env, process.platform, () => "madvise")) return; // nothing to do whatever THP is set to
  const mode = readThpMode();
  const env = hugePageEnv(process.env, process.platform, () => mode);
  if (!env) return;
  try {
    // /proc/self/exe: the file this start is running (and checked), even if an update has replaced the path since.
    process.execve("/proc/self/exe", [process.execPath, ...argv.slice(2)], env);
  } catch { /* e.g. a seccomp filter without execve: start as is */ }
}
