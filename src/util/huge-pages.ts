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
 * machine, outside Linux, or when run from the sources (the tests). Nor where THP is `always` (reexecPays): the
 * kernel then backs large anonymous mappings with huge pages whether malloc marks them or not, and the second start
 * would be paid for nothing (the 28 M model on this VM with THP switched to always, 5 alternated starts each: `context`
 * 25.5 ms without the tunable, 27.4 with it; /health 210 ms without the re-exec, 237 with it).
 *
 * On a virtual machine that reports freed memory to its host (virtio-balloon free page reporting, in 2 MiB blocks),
 * a reported block is backed by the host again only when touched, and what that costs as a huge page depends on the
 * host: ~4× its 4 KiB faults on one (155 M model, 1 GiB freed by another process 2.5 s before: 276 ms in huge pages,
 * 143 ms in 4 KiB pages), several times less on another (figures in fault-probe.ts). There each start measures it
 * (fault-probe.ts: three 2 MiB pages of each kind, ~6 ms) and re-executes only where huge pages measure cheaper.
 * `appliance install` writes the same choice into the unit (hugePageChoice, service/installer.ts), measured once,
 * at install.
 *
 * Everything here runs twice on a direct `serve` start, so it stays cheap: node:fs is loaded only to read the THP mode
 * and the balloon's features, and those are read only when the environment leaves something to do (not under the
 * unit, which sets the tunable).
 */
import { formatFaultCost, hugePagesCheaper, measureFaultCost, type FaultCost } from "./fault-probe";

export const HUGETLB_TUNABLE = "glibc.malloc.hugetlb=1";
/** Set in the re-executed process: never a second re-exec, whatever became of GLIBC_TUNABLES. */
export const REEXEC_MARK = "APPLIANCE_REEXEC";
/**
 * What the decision measured, where it measured (fault-probe.ts formatFaultCost): set for serve by this start (in the
 * re-executed environment, or in its own) or by the unit (install's measurement, beside the tunable). serve logs it.
 */
export const PAGE_PROBE = "APPLIANCE_PAGE_PROBE";

/**
 * The environment to re-execute with, or null when there is nothing to do. `smallPagesHere`: whether 4 KiB pages are
 * the better choice on this machine although THP is on (asked only when everything else says re-execute: it may measure).
 */
export function hugePageEnv(env: Record<string, string | undefined>, platform: string, thpMode: () => string | undefined,
  smallPagesHere: () => boolean): Record<string, string> | null {
  if (platform !== "linux" || env[REEXEC_MARK]) return null;
  const tunables = env.GLIBC_TUNABLES ?? "";
  if (/(^|:)glibc\.malloc\.hugetlb=/.test(tunables)) return null;
  const mode = thpMode();
  if (mode === "never" || mode === undefined) return null;
  if (smallPagesHere()) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  out.GLIBC_TUNABLES = tunables ? `${tunables}:${HUGETLB_TUNABLE}` : HUGETLB_TUNABLE;
  out[REEXEC_MARK] = "1";
  return out;
}

/**
 * Whether re-executing for the tunable can pay under THP `mode`: not under `always`, where the kernel already puts
 * large allocations in huge pages (the header). The unit keeps the tunable there (hugePageChoice): it costs nothing in it.
 */
export const reexecPays = (mode: string | undefined): boolean => mode !== "always";

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

/** virtio's feature bit VIRTIO_BALLOON_F_REPORTING: the guest reports free pages to the host. */
const BALLOON_REPORTING_BIT = 5;

/**
 * Whether a virtio balloon device of this machine negotiated free page reporting. Its sysfs `features` file is one
 * character per feature bit ("0"/"1"), bit 0 first. No balloon, or unreadable: false.
 */
export function reportsFreePages(dir = "/sys/bus/virtio/drivers/virtio_balloon"): boolean {
  try {
    const fs = require("node:fs") as typeof import("node:fs");
    return fs.readdirSync(dir).filter((d) => d.startsWith("virtio")).some((d) => {
      try { return fs.readFileSync(`${dir}/${d}/features`, "utf8")[BALLOON_REPORTING_BIT] === "1"; } catch { return false; }
    });
  } catch {
    return false;
  }
}

/**
 * 4 KiB pages despite THP: on a machine that reports freed memory to its hypervisor, unless huge pages measure
 * cheaper there now (fault-probe.ts). Elsewhere huge pages, unmeasured (context phase 105-135 → 28-36 ms, above).
 */
export const smallPagesHere = (reports = reportsFreePages, measure = measureFaultCost): boolean => reports() && !hugePagesCheaper(measure());

/**
 * Whether large allocations should be in huge pages on this machine (THP on, and 4 KiB pages not the better choice),
 * and the measurement it took, if it measured: what install writes into the unit.
 */
export function hugePageChoice(platform = process.platform): { huge: boolean; cost?: FaultCost } {
  let cost: FaultCost | undefined;
  const huge = hugePageEnv({}, platform, readThpMode, () => smallPagesHere(reportsFreePages, () => (cost = measureFaultCost()))) !== null;
  return cost ? { huge, cost } : { huge };
}

export const hugePagesHere = (platform = process.platform): boolean => hugePageChoice(platform).huge;

/**
 * Re-executes the compiled binary with the tunable when hugePageEnv says so; returns only when it did not (from the
 * sources, nothing to do, or execve refused — the start then goes on without huge pages).
 */
export function reexecWithHugePages(argv = process.argv) {
  // Figures only from this start's own measurement (carried through its re-exec) or the unit's (install's): not an
  // export left in a shell, logged as if measured now.
  if (!process.env[REEXEC_MARK] && !process.env.APPLIANCE_SERVICE) delete process.env[PAGE_PROBE];
  // In the compiled binary argv[1] is the bundle's virtual path; from the sources it is a .ts file bun runs.
  if (!argv[1]?.startsWith("/$bunfs/") || typeof process.execve !== "function") return;
  if (!hugePageEnv(process.env, process.platform, () => "madvise", () => false)) return; // nothing to do whatever THP is set to
  const mode = readThpMode();
  if (!reexecPays(mode)) return; // before the probe: nothing it finds would change that
  let cost: FaultCost | undefined;
  const env = hugePageEnv(process.env, process.platform, () => mode, () => smallPagesHere(reportsFreePages, () => (cost = measureFaultCost())));
  // What was measured goes to serve, which logs it: in the environment it re-executes with, and its own (execve refused).
  if (cost) { process.env[PAGE_PROBE] = formatFaultCost(cost); if (env) env[PAGE_PROBE] = process.env[PAGE_PROBE]; }
  if (!env) return;
  try {
    // /proc/self/exe: the file this start is running (and checked), even if an update has replaced the path since.
    process.execve("/proc/self/exe", [process.execPath, ...argv.slice(2)], env);
  } catch { /* e.g. a seccomp filter without execve: start as is */ }
}
