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
      const llama = await loadLlama(gpu);
      if (typeof llama === "string") { console.error(`appliance gpu-preflight: ${llama}`); return EXIT.FAIL; }
      if (llama.gpu !== gpu) { console.error(`appliance gpu-preflight: the ${gpu} libraries loaded, but llama.cpp found no ${gpu} device (it chose ${llama.gpu || "the cpu"})`); return EXIT.FAIL; }
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
 * getLlama for the backend, or why it did not load in one line. node-llama-cpp reports why a binary failed to load
 * (e.g. "libcublas.so.13: cannot open shared object file") on the console, as an Error Bun prints with a page of the
 * bundle's minified source, then throws NoBinaryFoundError: the cause is taken from what it printed, so serve's
 * fallback line names it (seen with a CUDA engine built here, on a machine whose cuBLAS the loader cannot find).
 */
async function loadLlama(gpu: "cuda" | "vulkan" | "metal"): Promise<Llama | string> {
  const said: string[] = [];
  const keep = (...args: unknown[]) => { for (const a of args) if (a instanceof Error) said.push(a.message); };
  const { error, warn } = console;
  console.error = keep;
  console.warn = keep;
  try {
    return await getLlama({ gpu, build: "never", skipDownload: true, progressLogs: false });
  } catch (e) {
    if (!(e instanceof NoBinaryFoundError)) throw e;
    return said.length ? `the ${gpu} libraries did not load: ${[...new Set(said)].join("; ")}`
      : `no ${gpu} libraries: this binary carries none and no ${gpu} engine is built (sudo appliance engine build --gpu ${gpu})`;
  } finally {
    console.error = error;
    console.warn = warn;
  }
}
