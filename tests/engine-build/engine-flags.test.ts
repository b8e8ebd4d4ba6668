/**
 * Issue 11 item 3 (decode at llama-server's speed): every Linux engine build compiles llama.cpp and the addon with
 * -fno-semantic-interposition, both `appliance engine build` (src/engine/engine-compile.ts) and the build-time
 * engine (scripts/engine-build.ts). node-llama-cpp builds shared libraries (-fPIC); without the flag GCC neither
 * inlines an exported function nor calls it directly, even from its own file, and decode ran 10-15% slower than
 * llama.cpp's static build of the same source (the measurement is in engine-compile.ts). That the flag reaches the
 * compiler is checked on real builds: engine-build-real.test.ts and tests/engine/engine-build.test.ts.
 */
import { expect, test } from "bun:test";
import { ENGINE_COMPILER_FLAGS, engineCmakeOptions, outdatedEngineBuild } from "../../src/engine/engine-compile";
import type { EngineGpu } from "../../src/engine/engine-tools";
import { cmakeOptionsFor } from "../../scripts/engine-build";

const builds: [EngineGpu, boolean][] = [[false, false], [false, true], ["cuda", false], ["vulkan", false]];

test.each(builds)("appliance engine build (gpu %p, portable %p) passes the flag to the C and C++ compilers", (gpu, portable) => {
  const options = engineCmakeOptions(gpu, portable, "b1");
  expect(ENGINE_COMPILER_FLAGS).toBe("-fno-semantic-interposition");
  expect([options.CMAKE_C_FLAGS, options.CMAKE_CXX_FLAGS]).toEqual([ENGINE_COMPILER_FLAGS, ENGINE_COMPILER_FLAGS]);
});

test.each([false, true])("the build-time engine (portable %p) passes the flag too", (portable) => {
  const options = cmakeOptionsFor(portable);
  expect(options.CMAKE_C_FLAGS).toBe(ENGINE_COMPILER_FLAGS);
  // cmake-js sets CMAKE_CXX_FLAGS itself after these options: C++ gets the flag with the Release flags.
  expect(options.CMAKE_CXX_FLAGS).toBeUndefined();
  expect(options.CMAKE_CXX_FLAGS_RELEASE!.split(" ")).toEqual(["-O3", "-DNDEBUG", ENGINE_COMPILER_FLAGS]);
});

test("an engine recorded without the flag is outdated on Linux (engine status says so); one with it, or a macOS build, is not", () => {
  expect(outdatedEngineBuild({ GGML_NATIVE: "ON" }, "linux")).toContain(`built without ${ENGINE_COMPILER_FLAGS}`);
  expect(outdatedEngineBuild({ CMAKE_C_FLAGS: ENGINE_COMPILER_FLAGS }, "linux")).toContain("built without"); // C++ too
  expect(outdatedEngineBuild(engineCmakeOptions(false, false, "b1"), "linux")).toBeNull();
  expect(outdatedEngineBuild({}, "darwin")).toBeNull();
});
