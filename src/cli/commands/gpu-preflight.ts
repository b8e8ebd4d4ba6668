/**
 * appliance gpu-preflight --gpu KIND --state-dir DIR (internal): run by serve in
 * a child process; loads a tiny generated model on the GPU and decodes a few
 * tokens. If the GPU stack aborts the process, only this child dies.
 */
import fs from "node:fs";
import path from "node:path";
import { getLlama, LlamaCompletion } from "node-llama-cpp";
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
      const llama = await getLlama({ gpu, build: "never", skipDownload: true, progressLogs: false });
      if (llama.gpu !== gpu) { console.error(`backend ${gpu} unavailable (got ${llama.gpu || "cpu"})`); return EXIT.FAIL; }
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
