/** The build's half of the CPU variant choice (scripts/build-cpu-backend.ts): the bundle layout and the Llama.js hook. */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { cpuBackendHook, cpuVariantLayout } from "../../scripts/build-cpu-backend";

const LLAMA_JS = path.join(import.meta.dir, "..", "..", "node_modules", "node-llama-cpp", "dist", "bindings", "Llama.js");

describe("CPU folder layout", () => {
  test("a CPU folder's variants go to fallback/, everything else stays", () => {
    const files = ["llama-addon.node", "libggml-base.so", "libggml.so", "libggml-cpu-haswell.so", "libggml-cpu-x64.so", "_nlcBuildMetadata.json"];
    expect(Object.fromEntries(cpuVariantLayout(files))).toEqual({
      "llama-addon.node": "llama-addon.node", "libggml-base.so": "libggml-base.so", "libggml.so": "libggml.so",
      "libggml-cpu-haswell.so": "fallback/libggml-cpu-haswell.so", "libggml-cpu-x64.so": "fallback/libggml-cpu-x64.so",
      "_nlcBuildMetadata.json": "_nlcBuildMetadata.json",
    });
  });
  test("a GPU folder, a single native CPU library and a folder that has fallback/ already keep node-llama-cpp's layout", () => {
    const same = (files: string[]) => [...cpuVariantLayout(files)].every(([a, b]) => a === b);
    expect(same(["libggml-cuda.so", "libggml-cpu-haswell.so", "libggml-cpu-x64.so"])).toBe(true);
    expect(same(["libggml-vulkan.so", "libggml-cpu-haswell.so", "libggml-cpu-x64.so"])).toBe(true);
    expect(same(["libggml-cpu.so", "libggml-base.so"])).toBe(true);
    expect(same(["libggml-cpu-x64.so", "libggml-cpu-haswell.so", "fallback/libggml-cpu-x64.so"])).toBe(true);
  });
});

describe("Llama.js hook", () => {
  test("node-llama-cpp's constructor gets GGML_BACKEND_PATH around the folder scan, once", () => {
    const out = cpuBackendHook(fs.readFileSync(LLAMA_JS, "utf8"));
    const scan = out.indexOf("bindings.loadBackends(backendsPath);");
    expect(out.indexOf('bindings.setEnv("GGML_BACKEND_PATH", applianceCpu.path)')).toBeLessThan(scan);
    expect(out.indexOf('bindings.setEnv("GGML_BACKEND_PATH", undefined)')).toBeGreaterThan(scan);
    expect(out.indexOf("bindings.loadBackends(fallbackBackendsDir)")).toBeGreaterThan(scan);
    expect(out.match(/__APPLIANCE_CPU_BACKEND__/g)).toHaveLength(1);
  });
  test("a changed Llama.js stops the build", () => {
    expect(() => cpuBackendHook("bindings.loadBackends();")).toThrow(/Llama\.js changed/);
  });
});
