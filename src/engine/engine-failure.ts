/**
 * Why an engine build failed, read from its log, where the reason is a known one. Some of what a GPU build needs
 * cannot be found with certainty before cmake looks for it (cuBLAS beside nvcc, the SPIR-V headers, the Vulkan
 * loader: each under prefixes only cmake's search knows), so `engine build` lets cmake look and names what it did
 * not find, with its package, as for a missing compiler (exit 3, nothing written). Seen on the development machine
 * (Debian 12): CUDA 13's nvcc without cuBLAS and without a GPU, glslc without the spirv-headers package, and
 * Debian 12's glslc too old for the Vulkan shaders; each was a cmake or shader error 40 lines deep.
 */
import type { MissingTool } from "./engine-tools";

/** A build that failed for a known reason: the tools it lacked, and/or a sentence for the operator. */
export class EngineBuildFailure extends Error {
  constructor(readonly missing: MissingTool[], readonly reasons: string[]) {
    super(reasons.join("\n") || `cmake did not find: ${missing.map((m) => m.tool).join(", ")}`);
  }
}

const KNOWN: { re: RegExp; tool?: MissingTool; reason?: string }[] = [
  { re: /links to:\s+CUDA::cublas\s+but the target was not found/, tool: { tool: "cuBLAS (libcublas, part of the CUDA toolkit; not found beside nvcc)", debian: "nvidia-cuda-toolkit (or NVIDIA's libcublas-dev-<CUDA version>)", macos: "(no CUDA on macOS)" } },
  { re: /CUDA Toolkit not found/, tool: { tool: "the CUDA toolkit (cmake found no CUDA runtime beside nvcc)", debian: "nvidia-cuda-toolkit (or NVIDIA's cuda-toolkit)", macos: "(no CUDA on macOS)" } },
  { re: /Could NOT find Vulkan/, tool: { tool: "the Vulkan headers and loader (libvulkan)", debian: "libvulkan-dev", macos: "brew install vulkan-headers vulkan-loader" } },
  { re: /provided by\s+"SPIRV-Headers"/, tool: { tool: "SPIRV-Headers, the SPIR-V headers the Vulkan build includes", debian: "spirv-headers", macos: "brew install spirv-headers" } },
  {
    re: /CUDA_ARCHITECTURES is set to "native", but no GPU was detected/,
    reason: "no NVIDIA GPU is visible to this build, and cmake compiles for the GPUs it sees: run it on the GPU host " +
      "(in a container, with the GPU passed through), or name the GPU architectures: --cuda-arch 90 (H100/H200; 80: A100, " +
      "86: RTX 3000/A10, 89: RTX 4000/L4/L40, 120: RTX 5000; several: --cuda-arch 80,90), or build with --portable " +
      "(llama.cpp's own list of architectures, and every CPU variant; a longer build)",
  },
  {
    re: /extension not supported: GL_KHR_cooperative_matrix/,
    reason: "this machine's glslc cannot compile the Vulkan shaders of the llama.cpp this binary carries: they use " +
      "GL_KHR_cooperative_matrix, which its glslang does not know (Debian 12's glslc, glslang 11.13, lacks it; `glslc --version` " +
      "says which this is). Give the build a newer one (the LunarG Vulkan SDK's, with VULKAN_SDK set to the SDK; or a newer distribution's, first in PATH) and build again",
  },
];

/** The known reasons a build log shows, or null when it shows none of them (then the log's tail is the message). */
export function knownBuildFailure(log: string): EngineBuildFailure | null {
  const hits = KNOWN.filter((k) => k.re.test(log));
  if (!hits.length) return null;
  return new EngineBuildFailure(hits.flatMap((h) => h.tool ?? []), hits.flatMap((h) => h.reason ?? []));
}
