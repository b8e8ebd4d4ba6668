/**
 * Start-time trims of node-llama-cpp for the compiled binary (scripts/build.ts's plugin calls trimNodeLlamaCpp).
 *
 * Importing node-llama-cpp evaluates its whole module graph, including the helpers of paths the server never takes:
 * model downloads (ipull), cloning and building llama.cpp (simple-git) and CLI progress output (ora, stdout-update,
 * slice-ansi: its import makes an Intl.Segmenter, ~3 ms).
 * Measured with --cpu-prof on the compiled binary (2-core VM): those packages cost ~20 ms of every start, ora alone
 * ~11 ms because its `import { stripVTControlCharacters } from "util"` loads Bun's util.inspect module. In the binary
 * they are replaced by stubs that throw when called (loudly, naming the package), so a node-llama-cpp path that did
 * reach one fails the engine and conformance tests instead of silently doing something else. The server passes
 * `build: "never"` and `skipDownload: true` to getLlama and never calls node-llama-cpp's download or CLI functions.
 *
 * Its utils/getTempDir.js also formats the local date at import for a run id (the first local-time Date call loads
 * the time zone: 11-14 ms); the same id is computed at its first use instead. *
 * Its detectGlibc() looks for libc and the dynamic loader by probing ~200 file names in 9 library dirs (~5 ms of
 * getLlama); the compiled Linux binary is itself a glibc executable (its ELF interpreter is ld-linux), so where it
 * runs at all, glibc is there: on Linux the answer is true without looking (elsewhere false, as before).
 *
 * getLlama asks whether a llama.cpp clone exists inside the package (lockfile checks, file probes): in the binary the
 * package is its virtual file system, where there never is one, so the answer is given without looking (noClonedRepo).
 *
 * Its GGUF parser reads arrays (a model's vocabulary) element by element through promise-or-value closures: in the
 * binary it asks the file reader for the whole array first (fastArrays; the reader is src/engine/gguf-fs-reader.ts).
 *
 * graceful-fs (what fs-extra, jsonfile and proper-lockfile require in place of fs) costs 13-17 ms to load in the binary
 * (it clones fs, pulling in Bun's util, assert and stream modules, and patches fs.close): its one job, queueing opens
 * that hit EMFILE to retry them, does not arise for the handful of files node-llama-cpp touches. Those packages get
 * node:fs itself (plainFs).
 *
 * Its GGUF insights measure a model's memory by a simulated load where, on the CPU, a formula gives the same (cpuModelEstimate).
 *
 * prom-client's index requires its Pushgateway (node:http, node:https, node:zlib: 5-10 ms of Bun's built-in modules
 * in the same profile), which the server never uses (it is scraped at /metrics): a stub class that throws.
 */
import fs from "node:fs";
import type { PluginBuilder } from "bun";

/** Each stubbed package and the names node-llama-cpp's (non-CLI) modules import from it. */
const STUBS: Record<string, string> = {
  "ora": "export default unused;",
  "simple-git": "export const simpleGit = unused;",
  "ipull": "export const downloadFile = unused, downloadSequence = unused, DownloadStatus = Object.freeze({});",
  "stdout-update": "export default Object.freeze({ getInstance: unused });",
  "slice-ansi": "export default unused;",
};

/** The stub module for `pkg`: every export throws when called. */
export function stubModule(pkg: string): string {
  const body = STUBS[pkg];
  if (!body) throw new Error(`no stub for ${pkg}`);
  return `function unused() { throw new Error(${JSON.stringify(`${pkg} is not in the compiled binary (node-llama-cpp called it: downloads, llama.cpp builds and CLI output are not used by appliance)`)}); }\n${body}\n`;
}

/** Throws (the build stops) unless `anchor` occurs exactly once in `source`, node-llama-cpp's `file`: the file changed shape. */
function expectOnce(source: string, anchor: string, file: string): void {
  if (source.split(anchor).length !== 2) throw new Error(`node-llama-cpp's ${file} changed: update scripts/build-nlc-trim.ts`);
}

/** getTempDir.js with its run id computed at first use instead of at import. Throws when the file no longer has the expected shape. */
export function lazyRunId(source: string): string {
  const head = "const currentDate = new Date();\nconst currentRunIdOf() = [";
  let out = source.replace(/\bcurrentRunId\b/g, "currentRunIdOf()");
  const start = out.indexOf(head), end = out.indexOf('].join("");', start);
  if (start < 0 || end < 0 || out.indexOf(head, start + 1) >= 0) throw new Error("node-llama-cpp's utils/getTempDir.js changed: update scripts/build-nlc-trim.ts");
  out = `${out.slice(0, start)}let currentRunIdMemo;\nconst currentRunIdOf = () => currentRunIdMemo ??= (() => { const currentDate = new Date(); return [` +
    `${out.slice(start + head.length, end)}].join(""); })();${out.slice(end + '].join("");'.length)}`;
  return out;
}

/** node-llama-cpp's detectGlibc in the compiled binary (see the file comment). */
export const DETECT_GLIBC = 'export async function detectGlibc({ platform }) { return platform === "linux"; }\n';

const ARRAY_READ = "            ], ([arrayType, arrayLength]) => {\n                const arrayValues = [];\n";

/**
 * Its GGUF parser (gguf/parser/GgufV2Parser.js) with arrays read in one loop by the compiled binary's file reader
 * (src/engine/gguf-fs-reader.ts readArray, same values) instead of element by element through promise-or-value
 * closures: ~11 ms of every start for the 28 M test model's ~700-token vocabulary. Throws when the file changed shape.
 */
export function fastArrays(source: string): string {
  expectOnce(source, ARRAY_READ, "gguf/parser/GgufV2Parser.js");
  const at = source.indexOf(ARRAY_READ);
  const head = "            ], ([arrayType, arrayLength]) => {\n";
  return source.slice(0, at) + head +
    "                const fast = this._fileReader.readArray?.(readOffset, arrayType, arrayLength);\n                if (fast !== undefined) return fast;\n" +
    source.slice(at + head.length);
}

const CLONED_INFO = "export async function getClonedLlamaCppRepoReleaseInfo() {\n";
const CLONED = "export async function isLlamaCppRepoCloned(waitForLock = true) {\n";

/**
 * Its bindings/utils/cloneLlamaCppRepo.js answering "no llama.cpp clone" at once: the clone would sit inside the package
 * (llama/llama.cpp), which in the binary is its read-only virtual file system, so there never is one; getLlama asked
 * through lockfile checks and file probes (~5-10 ms of every start). Throws when the file changed shape.
 */
export function noClonedRepo(source: string): string {
  for (const head of [CLONED_INFO, CLONED]) expectOnce(source, head, "bindings/utils/cloneLlamaCppRepo.js");
  return source.replace(CLONED_INFO, `${CLONED_INFO}    return null; // the compiled binary: never a clone (scripts/build-nlc-trim.ts)\n`)
    .replace(CLONED, `${CLONED}    return false; // the compiled binary: never a clone (scripts/build-nlc-trim.ts)\n`);
}

const SIMULATE_MODEL = "    async _simulateModelResourceUsage({ gpuLayers, useMmap = this._getUseMmap(), simulatorSession = this._simulationSession }) {\n";

/**
 * Its gguf/insights/GgufInsights.js estimating a model's memory by formula, not by a simulated load, when the binding
 * has no GPU: node-llama-cpp loads the model a first time in llama.cpp's no-allocation mode to measure it (3-5 ms of
 * `model check` in every start, bench-cold) and, on the CPU, gets what the formula gives (the tensors' bytes, mapped
 * from the file; tests/engine/cpu-model-estimate.test.ts). Context estimates still simulate: there the formula is
 * 2.25× the simulated figure, and a larger reservation could refuse a context that fits. Throws when the file changed.
 */
export function cpuModelEstimate(source: string): string {
  expectOnce(source, SIMULATE_MODEL, "gguf/insights/GgufInsights.js");
  return source.replace(SIMULATE_MODEL, `${SIMULATE_MODEL}        if (this._llama.gpu === false) return null; // the CPU: the formula (scripts/build-nlc-trim.ts)\n`);
}

/** Registers the trims on a Bun build (see the file comment). */
export function trimNodeLlamaCpp(build: PluginBuilder) {
  const names = Object.keys(STUBS).map((p) => p.replace(/[-/]/g, "\\$&")).join("|");
  build.onResolve({ filter: new RegExp(`^(${names})$`) }, (args) =>
    /node-llama-cpp[\\/]dist[\\/]/.test(args.importer) ? { path: args.path, namespace: "nlc-unused" } : undefined);
  build.onLoad({ filter: /.*/, namespace: "nlc-unused" }, (args) => ({ loader: "js", contents: stubModule(args.path) }));
  build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]bindings[\\/]utils[\\/]detectGlibc\.js$/ }, () => ({ loader: "js", contents: DETECT_GLIBC }));
  build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]utils[\\/]getTempDir\.js$/ }, (args) => ({
    loader: "js", contents: lazyRunId(fs.readFileSync(args.path, "utf8")),
  }));
  build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]bindings[\\/]utils[\\/]cloneLlamaCppRepo\.js$/ }, (args) => ({
    loader: "js", contents: noClonedRepo(fs.readFileSync(args.path, "utf8")),
  }));
  build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]gguf[\\/]parser[\\/]GgufV2Parser\.js$/ }, (args) => ({
    loader: "js", contents: fastArrays(fs.readFileSync(args.path, "utf8")),
  }));
  build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]gguf[\\/]insights[\\/]GgufInsights\.js$/ }, (args) => ({
    loader: "js", contents: cpuModelEstimate(fs.readFileSync(args.path, "utf8")),
  }));
}

/** What graceful-fs is in the compiled binary (see the file comment): node:fs itself. */
export const PLAIN_FS = 'module.exports = require("fs");\n';

/** Registers the graceful-fs trim: a package under node_modules requiring it gets node:fs. */
export function plainFs(build: PluginBuilder) {
  build.onResolve({ filter: /^graceful-fs$/ }, (args) =>
    /[\\/]node_modules[\\/]/.test(args.importer) ? { path: "graceful-fs", namespace: "plain-fs" } : undefined);
  build.onLoad({ filter: /.*/, namespace: "plain-fs" }, () => ({ loader: "js", contents: PLAIN_FS }));
}

/** prom-client's Pushgateway (see the file comment): the server never pushes metrics. */
export const PUSHGATEWAY_STUB = 'module.exports = class Pushgateway { constructor() { throw new Error("prom-client\'s Pushgateway is not in the compiled binary"); } };\n';

/** Registers the prom-client trim on a Bun build. */
export function trimPromClient(build: PluginBuilder) {
  build.onResolve({ filter: /^\.\/lib\/pushgateway$/ }, (args) =>
    /prom-client[\\/]index\.js$/.test(args.importer) ? { path: "pushgateway", namespace: "prom-unused" } : undefined);
  build.onLoad({ filter: /.*/, namespace: "prom-unused" }, () => ({ loader: "js", contents: PUSHGATEWAY_STUB }));
}
