/**
 * appliance gpu-preflight --gpu KIND --state-dir DIR (internal): run by serve in
 * a child process; loads a tiny generated model on the GPU and decodes a few
 * tokens. If the GPU stack aborts the process, only this child dies.
 */
import fs from "node:fs";
import path from "node:path";
import { getLlama, LlamaCompletion, NoBinaryFoundError, type Llama } from "node-llama-cpp";
import { prepareNative } from "../../engine/native";
import { PREFLIGHT_ENGINE_ENV, selectEngine } from "../../engine/engine-select";
import { makeTinyModel } from "../../engine/tiny-model";
import { EXIT, parseOwn, UsageError, type Command } from "../command";

export const gpuPreflight: Command = {
  name: "gpu-preflight",
  summary: "Internal: try a GPU backend in isolation",
  usage: "appliance gpu-preflight --gpu cuda|vulkan|metal --state-dir DIR",
  hidden: true,
  async run(argv) {
    const { values } = parseOwn(argv, { gpu: { type: "string" }, "state-dir": { type: "string" } });
    if (!["cuda", "vulkan", "metal"].includes(values.gpu as string) || !values["state-dir"]) throw new UsageError("gpu-preflight needs --gpu cuda|vulkan|metal and --state-dir DIR");
    const gpu = values.gpu as "cuda" | "vulkan" | "metal";
    const stateDir = values["state-dir"] as string;
    await prepareNative(stateDir);
    // serve chose a built engine (gpu.ts names its engine.dir in the reserved PREFLIGHT_ENGINE_ENV): preflight that
    // one, verified again. The operator's APPLIANCE_ENGINE__* settings are serve's to read, not this child's.
    const built = process.env[PREFLIGHT_ENGINE_ENV];
    if (built) selectEngine({ use: "built", dir: built });
    const dir = fs.mkdtempSync(path.join(stateDir, "preflight-"));
    try {
      const file = path.join(dir, "tiny.gguf");
      await makeTinyModel(file, { layers: 1, embd: 32, heads: 2, ff: 64, ctx: 128 });
      const { llama, why } = await loadLlama(gpu);
      if (!llama) { console.error(`appliance gpu-preflight: ${why}`); return EXIT.FAIL; }
      const model = await llama.loadModel({ modelPath: file, gpuLayers: "max" });
      const ctx = await model.createContext({ contextSize: 128 });
      const completion = new LlamaCompletion({ contextSequence: ctx.getSequence(), autoDisposeSequence: true });
      await completion.generateCompletion("hello", { maxTokens: 4 });
      completion.dispose();
      await ctx.dispose();
      await model.dispose();
      await llama.dispose();
      console.log("preflight ok");
      return EXIT.OK;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};

/**
 * getLlama for the backend, or why not in one line. node-llama-cpp reports why a binary failed to load (e.g.
 * "libcublas.so.13: cannot open shared object file") on the console, as an Error Bun prints with a page of the
 * bundle's minified source, then throws NoBinaryFoundError; llama.cpp's own warnings while its backend starts (e.g.
 * "failed to initialize CUDA: CUDA driver version is insufficient") come as plain console lines. Both are taken
 * while getLlama runs, so serve's fallback line names the cause (seen with a CUDA engine built here, on a machine
 * whose cuBLAS the loader could not find, then on one with no CUDA driver).
 */
async function loadLlama(gpu: "cuda" | "vulkan" | "metal"): Promise<{ llama: Llama; why?: undefined } | { llama?: undefined; why: string }> {
  const errors: string[] = [], lines: string[] = [];
  const plain = (x: string) => x.replace(/\x1b\[[0-9;]*m/g, "").replace(/\s+/g, " ").trim().slice(0, 200);
  const keep = (...args: unknown[]) => {
    for (const a of args) if (a instanceof Error) errors.push(plain(a.message));
    const text = plain(args.filter((a) => typeof a === "string").join(" "));
    if (text) lines.push(text);
  };
  const said = () => (lines.length ? `; node-llama-cpp said: ${[...new Set(lines)].slice(-2).join(" / ")}` : "");
  const { error, warn } = console;
  console.error = keep;
  console.warn = keep;
  try {
    const llama = await getLlama({ gpu, build: "never", skipDownload: true, progressLogs: false });
    // It can also hand back another backend than asked for (no device; or `auto` where the platform has no such one).
    if (llama.gpu === gpu) return { llama };
    await llama.dispose();
    return { why: `llama.cpp gave ${llama.gpu || "the cpu"}, not ${gpu} (no ${gpu} device it could use)${said()}` };
  } catch (e) {
    if (!(e instanceof NoBinaryFoundError)) throw e;
    if (errors.length) return { why: `the ${gpu} libraries did not load: ${[...new Set(errors)].join("; ")}` };
    return { why: `no loadable ${gpu} libraries (none in this binary, and no ${gpu} engine built: sudo appliance engine build --gpu ${gpu})${said()}` };
  } finally {
    console.error = error;
    console.warn = warn;
  }
}
