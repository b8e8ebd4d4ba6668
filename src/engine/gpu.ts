/**
 * GPU must never kill the server. A broken GPU stack can abort the whole
 * process at the first decode (seen: node-llama-cpp 3.22.1's CUDA prebuilt on
 * driver 580 — "PTX compiled with an unsupported toolchain"), which no
 * try/catch survives. So a GPU backend is first tried in a child process that
 * loads a tiny model and decodes a few tokens; only if it exits cleanly does
 * the server use it, else it falls back to CPU and says exactly why.
 */
import fs from "node:fs";
import type { Config } from "../config/schema";
import { NATIVE_BUNDLE, type NativeBundle } from "./native-assets";
import { builtEngineDir, builtEngineHas, PREFLIGHT_ENGINE_ENV } from "./engine-select";

export type GpuChoice = "cuda" | "vulkan" | "metal" | false;

/** What "auto" means on this machine, before any preflight. */
export function candidateGpu(setting: Config["gpu"], platform = process.platform, arch = process.arch): GpuChoice {
  if (setting === "off") return false;
  if (setting !== "auto") return setting;
  if (platform === "darwin" && arch === "arm64") return "metal";
  if (platform === "linux" && (fs.existsSync("/dev/nvidia0") || fs.existsSync("/proc/driver/nvidia/version"))) return "cuda";
  return false;
}

/** Whether this build carries llama.cpp libraries for the backend (the CPU-only binary carries none). */
export function backendAvailable(gpu: Exclude<GpuChoice, false>): boolean {
  const bundle = NATIVE_BUNDLE as NativeBundle | null;
  if (builtEngineHas(`${process.platform}-${process.arch}-${gpu}`)) return true; // appliance engine build --gpu
  if (bundle) return bundle.folders.some((f) => f.folder.includes(gpu));
  const pkg = gpu === "metal" ? "@node-llama-cpp/mac-arm64-metal" : `@node-llama-cpp/${process.platform}-${process.arch}-${gpu}`;
  try { import.meta.resolve(pkg); return true; } catch { return false; }
}

/** How to re-run this very program: the compiled binary, or bun + the entry script. */
export function selfCommand(): string[] {
  return Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:\\~BUN") ? [process.execPath] : [process.execPath, Bun.main];
}

export interface PreflightResult { gpu: GpuChoice; reason?: string; ms: number }

export async function preflightGpu(gpu: GpuChoice, stateDir: string, timeoutMs = 120_000): Promise<PreflightResult> {
  const t0 = performance.now();
  if (!gpu) return { gpu: false, ms: 0 };
  // The child tries the engine this process chose (a verified built one: its engine.dir in the reserved variable);
  // an inherited value is never passed on.
  const env: Record<string, string | undefined> = { ...process.env };
  delete env[PREFLIGHT_ENGINE_ENV];
  const built = builtEngineDir();
  if (built) env[PREFLIGHT_ENGINE_ENV] = built;
  const proc = Bun.spawn([...selfCommand(), "gpu-preflight", "--gpu", gpu, "--state-dir", stateDir], { stdout: "pipe", stderr: "pipe", env });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  const ms = Math.round(performance.now() - t0);
  if (code === 0 && out.includes("preflight ok")) return { gpu, ms };
  const last = preflightOutput(err.trim() || out.trim());
  const how = proc.signalCode ? `killed by ${proc.signalCode}${proc.signalCode === "SIGKILL" ? " (timeout?)" : ""}` : `exit code ${code}`;
  return { gpu: false, ms, reason: `${gpu} preflight failed (${how}): ${last || "no output"}` };
}

/**
 * The last lines of a failed preflight child's output that say something: not stack frames, not the source excerpt
 * Bun prints with an error (from the binary's minified bundle), not an error's `code:` line.
 */
export function preflightOutput(text: string): string {
  // A source excerpt can also follow the text on its line ("… Error: 29 | `+getConsoleLogPrefix…"): cut there.
  const said = text.split("\n").map((l) => l.replace(/\s\d+ \| .*$/, "").trim()).filter((l) => l && !/^at\s/.test(l) && !/^\d+\s*\|/.test(l) && !/^\^+$/.test(l) && !/^code:\s/.test(l));
  return said.slice(-3).join(" | ").slice(0, 500);
}
