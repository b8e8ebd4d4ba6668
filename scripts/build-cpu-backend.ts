/**
 * The build's half of src/engine/cpu-backend.ts (loading the one CPU variant library this machine uses instead of
 * scoring all 14 at every start): the native bundle's layout and node-llama-cpp's Llama constructor.
 *
 * Layout: in a CPU folder (one with several libggml-cpu-<variant>.so and no GPU backend library), the variants are
 * embedded as fallback/libggml-cpu-<variant>.so, so ggml's scan of the binding's folder finds none of them, and
 * node-llama-cpp, finding no backend there, scans <folder>/fallback (its own fallback dir) as it always did. GPU
 * folders keep their layout (their CPU backend must load with the GPU one, in the same scan).
 *
 * Llama.js: around the scan of the binding's folder, GGML_BACKEND_PATH (read by ggml_backend_load_all_from_path,
 * which then loads exactly that file) is set to the remembered variant through the addon's own setEnv (Bun's
 * process.env does not reach native getenv), and unset right after; the constructor records whether it went on to
 * scan fallback/. Everything else node-llama-cpp does is unchanged.
 */

/** A GPU backend library: its folder keeps node-llama-cpp's layout. */
const GPU_LIB = /^libggml-(cuda|vulkan|metal|hip|musa|sycl|opencl|cann|blas)[.-]/;
const CPU_VARIANT = /^libggml-cpu-[^/]+\.so$/;

/**
 * The embedded name of each file of a prebuilt folder (paths relative to the folder): CPU variants moved to fallback/
 * where the folder qualifies (see the file comment), everything else unchanged.
 */
export function cpuVariantLayout(files: string[]): Map<string, string> {
  const variants = files.filter((f) => CPU_VARIANT.test(f));
  const qualifies = variants.length > 1 && !files.some((f) => GPU_LIB.test(f) || f.startsWith("fallback/"));
  return new Map(files.map((f) => [f, qualifies && CPU_VARIANT.test(f) ? `fallback/${f}` : f]));
}

/** Appended to the bundle version (the unpack dir's name) when a folder has the fallback layout: another layout, another dir. */
export const LAYOUT_TAG = "cpufb";

const SCAN = "            bindings.loadBackends(backendsPath);\n";

/** node-llama-cpp's dist/bindings/Llama.js with the hook (see the file comment). Throws when the file changed shape. */
export function cpuBackendHook(source: string): string {
  const at = source.indexOf(SCAN);
  if (at < 0 || source.indexOf(SCAN, at + 1) >= 0 || !source.includes("bindings.loadBackends(fallbackBackendsDir)")) {
    throw new Error("node-llama-cpp's dist/bindings/Llama.js changed: update scripts/build-cpu-backend.ts");
  }
  const hooked = "            const applianceCpu = globalThis.__APPLIANCE_CPU_BACKEND__;\n" +
    '            if (applianceCpu?.path) bindings.setEnv("GGML_BACKEND_PATH", applianceCpu.path);\n' +
    SCAN +
    '            if (applianceCpu?.path) bindings.setEnv("GGML_BACKEND_PATH", undefined);\n' +
    "            if (applianceCpu) applianceCpu.scanned = bindings.getGpuType() == null;\n";
  return source.slice(0, at) + hooked + source.slice(at + SCAN.length);
}
