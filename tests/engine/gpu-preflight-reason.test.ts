/**
 * What serve's "GPU preflight failed" line says (issue 11 item 8: the preflight falls back to CPU, and says why).
 * The child's output below is what a CUDA engine built here printed on a machine whose loader could not find cuBLAS
 * (before the child named the cause itself): the reason was the error's stack frames and "NoBinaryFoundError", the
 * cause hidden in a page of the bundle's minified source. The compiled binary's own fallback is tests/e2e/binary.test.ts.
 */
import { expect, test } from "bun:test";
import { preflightOutput } from "../../src/engine/gpu";

const CHILD_STDERR = `[node-llama-cpp] Failed to load a prebuilt binary for platform "linux" "x64" with CUDA support. Error: 29 | \`+getConsoleLogPrefix(!0)+source_default.yellow(\`It seems that Xcode command line tools are not installed
30 | \`)+getConsoleLogPrefix(!0)+source_default.yellow('To install Xcode command line tools, run "xcode-select --install"'));else if(buildOptions.gpu==="cuda"){
34 | \`+getConsoleLogPrefix()+\`If you're trying to run this inside of a Docker container, consider using "\${recommendedBaseDockerImage}" image\`)}

error: libcublas.so.13: cannot open shared object file: No such file or directory
 code: "ERR_DLOPEN_FAILED"

      at loadBindingModule (/$bunfs/root/chunk-a5dzzgtn.js:34:813)
      at loadExistingLlamaBinary (/$bunfs/root/chunk-a5dzzgtn.js:32:13134)
      at async getLlamaForOptions (/$bunfs/root/chunk-a5dzzgtn.js:32:7301)

appliance gpu-preflight: NoBinaryFoundError
`;

test("a failed preflight's reason keeps what its output says, not stack frames, source excerpts or code lines", () => {
  const reason = preflightOutput(CHILD_STDERR.trim());
  expect(reason).toContain("error: libcublas.so.13: cannot open shared object file");
  expect(reason).toEndWith("appliance gpu-preflight: NoBinaryFoundError");
  expect(reason).not.toMatch(/\bat (async )?\w+ \(/);
  expect(reason).not.toContain("getConsoleLogPrefix");
  expect(reason).not.toContain("ERR_DLOPEN_FAILED");
});

test("a plain last line stays as it is; at most three lines, at most 500 characters", () => {
  expect(preflightOutput("appliance gpu-preflight: no cuda libraries")).toBe("appliance gpu-preflight: no cuda libraries");
  expect(preflightOutput("a\nb\nc\nd")).toBe("b | c | d");
  expect(preflightOutput("x".repeat(900))).toHaveLength(500);
});
