/**
 * Which of ggml's CPU variant libraries (libggml-cpu-<variant>.so, one per x86 instruction-set level) this machine
 * runs, remembered so that a start loads that one library instead of all of them.
 *
 * ggml picks a variant by loading every libggml-cpu-*.so in the binding's folder and asking each for a score
 * (ggml_backend_load_best: 14 dlopen/dlclose pairs on linux-x64, ~20 ms of every start on a 2-core VM). So the build
 * (scripts/build-cpu-backend.ts) puts the variants in the folder's fallback/ subfolder, which node-llama-cpp loads
 * from only when the folder itself gave it no backend, and its Llama constructor (patched at build) sets
 * GGML_BACKEND_PATH to the variant remembered here while the folder's backends load: ggml then loads that one file
 * (and refuses it if it scores 0 on this CPU), and only when no backend came of it does node-llama-cpp scan
 * fallback/ the old way. A scan's pick is read from /proc/self/maps and remembered in the state dir, keyed by the
 * native bundle's version and the kernel's CPU feature list (/sys/devices/system/cpu/modalias): another CPU (a VM
 * moved to another host type) scans again. Every library named here is one prepareNative verified at this start;
 * the remembered file only chooses among them (a wrong choice costs a scan, never an unchecked load).
 */
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-write";
import { readSmallFile } from "../util/fs";
import { builtEngineHas } from "./engine-select";
import { NATIVE_BUNDLE, type NativeBundle, type NativeFolder } from "./native-assets";

/** In the state dir: the variant picked on this CPU for this bundle. */
export const CPU_BACKEND_FILE = "cpu-backend.json";
/** Where the build puts a folder's CPU variants (node-llama-cpp's fallback dir, see the file comment). */
export const VARIANT = /^fallback\/libggml-cpu-([A-Za-z0-9_.-]+)\.so$/;
/** The kernel's CPU identity and feature list (readable under the unit's ProcSubset=pid; /proc/cpuinfo is not). */
export const CPU_MODALIAS = "/sys/devices/system/cpu/modalias";

/** What node-llama-cpp's patched Llama constructor reads (scripts/build-cpu-backend.ts) and writes back. */
export interface CpuBackendHook {
  /** The variant library to load directly (GGML_BACKEND_PATH); none: scan fallback/. */
  path?: string;
  /** Set by the constructor: whether no backend came of the folder (and `path`), so fallback/ was scanned. */
  scanned?: boolean;
}
declare global { var __APPLIANCE_CPU_BACKEND__: CpuBackendHook | undefined }

interface Remembered { native: string; cpu: string; variant: string }

/** The bundle folder whose CPU variants the build moved to fallback/ (the CPU folder), if any. */
export function variantFolder(bundle: NativeBundle): NativeFolder | undefined {
  return bundle.folders.find((f) => f.assets.some((a) => VARIANT.test(a.name)));
}

/** The remembered choice: a regular file of at most 64 KiB only (a FIFO or a link to /dev/zero planted there hung or filled the start). */
function readJson(file: string): Partial<Remembered> | undefined {
  const text = readSmallFile(file, 1 << 16);
  try { return text === undefined ? undefined : JSON.parse(text) as Partial<Remembered>; } catch { return undefined; }
}

/** The variant of `folderDir`/fallback that this process has mapped (what ggml picked), if any. */
export function mappedVariant(folderDir: string, maps = "/proc/self/maps"): string | undefined {
  let text: string;
  try { text = fs.readFileSync(maps, "utf8"); } catch { return undefined; }
  const dir = `${path.join(folderDir, "fallback")}/`;
  for (const line of text.split("\n")) {
    const at = line.indexOf(dir);
    if (at >= 0) { const m = VARIANT.exec(`fallback/${line.slice(at + dir.length)}`); if (m) return m[1]; }
  }
  return undefined;
}

export interface CpuBackendChoice {
  /** Handed to node-llama-cpp (globalThis.__APPLIANCE_CPU_BACKEND__) for the getLlama call. */
  hook: CpuBackendHook;
  /** After getLlama: remembers a scan's pick; says what was loaded and how. */
  settle(): { variant?: string; how: "remembered" | "scanned" };
}

/**
 * For a CPU start on the embedded libraries verified at `nativeDir`: the remembered variant (if it still applies)
 * and how to remember a scan's pick. Undefined where there is nothing to choose: no variants in fallback/ (another
 * platform, an older layout), a GPU backend, a built engine for the folder, an operator's own GGML_BACKEND_PATH, or
 * no readable CPU identity.
 */
export function cpuBackend(stateDir: string, nativeDir: string, gpu: string | false,
  bundle = NATIVE_BUNDLE as NativeBundle | null): CpuBackendChoice | undefined {
  const folder = bundle && variantFolder(bundle);
  if (!folder || gpu || builtEngineHas(folder.folder) || process.env.GGML_BACKEND_PATH !== undefined) return undefined;
  let cpu: string;
  try { cpu = fs.readFileSync(CPU_MODALIAS, "utf8").trim(); } catch { return undefined; }
  if (!cpu) return undefined;
  const variants = new Set(folder.assets.map((a) => VARIANT.exec(a.name)?.[1]).filter((v): v is string => !!v));
  const file = path.join(stateDir, CPU_BACKEND_FILE);
  const memo = readJson(file);
  const known = memo?.native === bundle!.version && memo.cpu === cpu && typeof memo.variant === "string" && variants.has(memo.variant) ? memo.variant : undefined;
  const folderDir = path.join(nativeDir, folder.folder);
  const hook: CpuBackendHook = known ? { path: path.join(folderDir, "fallback", `libggml-cpu-${known}.so`) } : {};
  return {
    hook,
    settle() {
      if (hook.scanned === false && known) return { variant: known, how: "remembered" };
      const variant = mappedVariant(folderDir);
      if (variant && variant !== known) {
        try {
          writeFileAtomic(file, JSON.stringify({ native: bundle!.version, cpu, variant } satisfies Remembered) + "\n", { mode: 0o644 });
        } catch { /* a read-only state dir: the next start scans again */ }
      }
      return { variant, how: "scanned" };
    },
  };
}
