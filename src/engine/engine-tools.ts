/**
 * The tools `appliance engine build` needs on the target: cmake, a C and a C++ compiler, a build tool (ninja or
 * make), and for a GPU engine its compiler/SDK (CUDA: nvcc; Vulkan: glslc and the Vulkan headers, found by cmake).
 * No git, node or npm: the source comes embedded in the binary (engine-sources.ts). Every missing tool is named
 * in one message with the package that provides it, before anything is written.
 */
import fs from "node:fs";

/** The GPU backend an engine is built for (false: CPU only). */
export type EngineGpu = false | "cuda" | "vulkan";

/** What the build runs: absolute paths, and the cmake generator that goes with the build tool found. */
export interface BuildTools { cmake: string; cc: string; cxx: string; generator: "Ninja" | "Unix Makefiles"; nvcc?: string }

/** One missing tool and where it comes from. */
export interface MissingTool { tool: string; debian: string; macos: string }

/** $CC / $CXX when set (a name or a path), else the usual names in PATH. */
function findOne(env: string | undefined, names: string[]): string | undefined {
  for (const n of env ? [env] : names) {
    const found = n.includes("/") ? (fs.existsSync(n) ? n : undefined) : Bun.which(n) ?? undefined;
    if (found) return found;
  }
  return undefined;
}

/** CUDA's nvcc: $CUDACXX when set (only it), else in PATH or the toolkit's usual place. */
function findNvcc(): string | undefined {
  if (process.env.CUDACXX) return findOne(process.env.CUDACXX, []);
  return findOne(undefined, ["nvcc"]) ?? ["/usr/local/cuda/bin/nvcc", "/opt/cuda/bin/nvcc"].find((p) => fs.existsSync(p));
}

/** The tools found, or every one that is missing. */
export function findBuildTools(gpu: EngineGpu): { tools: BuildTools } | { missing: MissingTool[] } {
  const missing: MissingTool[] = [];
  const cmake = findOne(undefined, ["cmake"]);
  if (!cmake) missing.push({ tool: "cmake", debian: "cmake", macos: "brew install cmake" });
  const cc = findOne(process.env.CC, ["cc", "gcc", "clang"]);
  if (!cc) missing.push({ tool: `a C compiler (${process.env.CC ? `$CC=${process.env.CC}` : "cc, gcc or clang"})`, debian: "gcc", macos: "xcode-select --install" });
  const cxx = findOne(process.env.CXX, ["c++", "g++", "clang++"]);
  if (!cxx) missing.push({ tool: `a C++ compiler (${process.env.CXX ? `$CXX=${process.env.CXX}` : "c++, g++ or clang++"})`, debian: "g++", macos: "xcode-select --install" });
  const ninja = findOne(undefined, ["ninja"]), make = findOne(undefined, ["make"]);
  if (!ninja && !make) missing.push({ tool: "a build tool (ninja or make)", debian: "make (or ninja-build)", macos: "xcode-select --install" });
  const nvcc = gpu === "cuda" ? findNvcc() : undefined;
  if (gpu === "cuda" && !nvcc) missing.push({ tool: `nvcc, the CUDA compiler (${process.env.CUDACXX ? `$CUDACXX=${process.env.CUDACXX}` : "PATH or /usr/local/cuda/bin"})`, debian: "nvidia-cuda-toolkit (or NVIDIA's cuda-toolkit)", macos: "(no CUDA on macOS)" });
  if (gpu === "vulkan" && !findOne(undefined, ["glslc"])) missing.push({ tool: "glslc, the Vulkan shader compiler (and the Vulkan headers)", debian: "glslc libvulkan-dev", macos: "brew install shaderc vulkan-loader vulkan-headers" });
  if (missing.length) return { missing };
  return { tools: { cmake: cmake!, cc: cc!, cxx: cxx!, generator: ninja ? "Ninja" : "Unix Makefiles", ...(nvcc && { nvcc }) } };
}

/** The operator's message: each missing tool, then one install line per platform. */
export function missingToolsMessage(missing: MissingTool[]): string {
  const unique = (xs: string[]) => [...new Set(xs)];
  return [
    "appliance engine build: cannot build the engine here; missing:",
    ...missing.map((m) => `  - ${m.tool}`),
    `Debian/Ubuntu: apt-get install ${unique(missing.map((m) => m.debian)).join(" ")}`,
    `macOS: ${unique(missing.map((m) => m.macos)).join("; ")}`,
    "Nothing was written.",
  ].join("\n");
}

/** First line of `tool --version`, for the build record. */
export function toolVersion(tool: string): string {
  const r = Bun.spawnSync([tool, "--version"], { stderr: "pipe", stdout: "pipe" });
  return r.exitCode === 0 ? r.stdout.toString().split("\n")[0]!.trim() : "unknown";
}
