#!/usr/bin/env bun
/**
 * bun scripts/build.ts [--target linux-x64|linux-x64-cuda|darwin-arm64] [--out FILE]
 *
 * Compiles src/launch.ts + src/main.ts into ONE executable. Plain `bun build --compile` cannot
 * carry node-llama-cpp: it finds its prebuilt llama.cpp libraries through
 * import.meta.url, which is a virtual path inside the binary. This plugin
 * embeds the prebuilt package's files as assets (with their sha256), replaces
 * the package's getBinsDir() with the directory src/engine/native.ts unpacks
 * them into, and inlines the two JSON files node-llama-cpp reads at import.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { BunPlugin } from "bun";
import { sha256Bytes } from "../src/integrity/manifest";
import { engineBuild, type EngineBuild } from "./engine-build";
import { engineSources, type SourceArchive } from "./engine-sources";
import { plainFs, trimNodeLlamaCpp, trimPromClient } from "./build-nlc-trim";
import { lazyBuiltins } from "./build-lazy-builtins";
import { cpuBackendHook, cpuVariantLayout, LAYOUT_TAG } from "./build-cpu-backend";
import { bytecodeOrder, givenBytecodeOrder } from "./bytecode-order";

export const TARGETS = {
  "linux-x64": { bun: "bun-linux-x64", packages: ["@node-llama-cpp/linux-x64"] },
  "linux-x64-cuda": { bun: "bun-linux-x64", packages: ["@node-llama-cpp/linux-x64", "@node-llama-cpp/linux-x64-cuda"] },
  "darwin-arm64": { bun: "bun-darwin-arm64", packages: ["@node-llama-cpp/mac-arm64-metal"] },
} as const;
type Target = keyof typeof TARGETS;
/**
 * The binary's JIT policy until its start is over (compile.jitPolicy; Bun.unsafe.setJITPolicy(1) then). bench-cold-style
 * starts of the 28 M model (unit environment, 9 alternated each, 2-core VM): 201 ms at 1, 178 / 182 / 175 ms at 3 / 8 / 32;
 * a 150,000-token vocabulary (node-llama-cpp reads it in JavaScript) started no slower (1598 vs 1525 ms at 8).
 */
export const STARTUP_JIT_POLICY = 8;
/** Where the grammar files are unpacked, next to the library folders. */
const GRAMMARS_FOLDER = "grammars";

const root = path.resolve(import.meta.dir, "..");
const nm = (p: string) => path.join(root, "node_modules", p);
const nlcVersion: string = JSON.parse(fs.readFileSync(nm("node-llama-cpp/package.json"), "utf8")).version;
const llamaCppRelease: string = JSON.parse(fs.readFileSync(nm("node-llama-cpp/llama/binariesGithubRelease.json"), "utf8")).release;

function listFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name)).map((f) => path.join(e.name, f)) : [e.name]);
}

/** The package whose libraries a local engine build (scripts/engine-build.ts) replaces. */
const LOCAL_REPLACES = "@node-llama-cpp/linux-x64";

/** The generated src/engine/native-assets.ts: one embedded file import per library. */
function nativeAssetsModule(packages: readonly string[], local: EngineBuild | null): string {
  const imports: string[] = [], folders: string[] = [];
  let n = 0, relaid = false;
  for (const pkg of packages) {
    // build() checked that the package is installed; a local engine build has the same bins/<folder> layout.
    const binsDir = local && pkg === LOCAL_REPLACES ? local.binsDir : path.join(nm(pkg), "bins");
    for (const folder of fs.readdirSync(binsDir)) {
      // A CPU folder's variant libraries go to fallback/ (scripts/build-cpu-backend.ts).
      const layout = cpuVariantLayout(listFiles(path.join(binsDir, folder)));
      const assets = [...layout].map(([rel, name]) => {
        const abs = path.join(binsDir, folder, rel);
        const sha256 = sha256Bytes(fs.readFileSync(abs));
        imports.push(`import a${n} from ${JSON.stringify(abs)} with { type: "file" };`);
        if (name !== rel) relaid = true;
        return `{ name: ${JSON.stringify(name)}, path: a${n++}, sha256: "${sha256}" }`;
      });
      folders.push(`{ folder: ${JSON.stringify(folder)}, assets: [\n    ${assets.join(",\n    ")}\n  ] }`);
    }
  }
  // node-llama-cpp's grammar files (json_object mode reads llama/grammars/json.gbnf): unpacked and verified with
  // the libraries, and getGrammarsFolder() below points at them. Without them json_object is a 500 in the binary.
  const grammarsDir = nm("node-llama-cpp/llama/grammars");
  const grammars = fs.readdirSync(grammarsDir).filter((f) => f.endsWith(".gbnf")).map((rel) => {
    const abs = path.join(grammarsDir, rel);
    imports.push(`import a${n} from ${JSON.stringify(abs)} with { type: "file" };`);
    return `{ name: ${JSON.stringify(rel)}, path: a${n++}, sha256: "${sha256Bytes(fs.readFileSync(abs))}" }`;
  });
  folders.push(`{ folder: ${JSON.stringify(GRAMMARS_FOLDER)}, assets: [\n    ${grammars.join(",\n    ")}\n  ] }`);
  // The version names the unpack dir: a local engine gets its own (its build key), never the prebuilt's.
  const names = packages.map((p) => (local && p === LOCAL_REPLACES ? `local-${local.key.slice(0, 16)}` : p.split("/")[1]));
  if (relaid) names.push(LAYOUT_TAG); // another layout, another unpack dir: a previous binary keeps its own
  const engine = local ? { kind: "local", key: local.key, openmp: local.openmp, portable: local.portable } : { kind: "prebuilt" };
  return `${imports.join("\n")}\nexport const NATIVE_BUNDLE = { version: ${JSON.stringify(`${nlcVersion}-${names.join("+")}`)}, engine: ${JSON.stringify(engine)}, folders: [\n  ${folders.join(",\n  ")}\n] };\n`;
}

/** The generated src/engine/engine-sources.ts: the embedded source archive `appliance engine build` compiles (or null). */
function engineSourcesModule(sources: SourceArchive | null): string {
  const version = `export const ENGINE_NLC_VERSION = ${JSON.stringify(nlcVersion)};\n`;
  if (!sources) return `export const ENGINE_SOURCES = null;\n${version}`;
  const { file, sha256, bytes, nlcVersion: v, release, commit, patches } = sources;
  return `import archive from ${JSON.stringify(file)} with { type: "file" };\nexport const ENGINE_SOURCES = { path: archive, ...${JSON.stringify({ sha256, bytes, nlcVersion: v, release, commit, patches })} };\n${version}`;
}

function plugin(packages: readonly string[], local: EngineBuild | null, sources: SourceArchive | null): BunPlugin {
  const embedded = new Set<string>(packages);
  return {
    name: "appliance-native",
    setup(build) {
      // Every @node-llama-cpp/* prebuilt package: ours point at the unpack dir, the rest find nothing.
      build.onResolve({ filter: /^@node-llama-cpp\// }, (args) => ({ path: args.path, namespace: "nlc-bins" }));
      // An engine built on the target (`appliance engine build`, src/engine/engine-select.ts) replaces one package's
      // libraries: __APPLIANCE_ENGINE_BINS__ maps the package name to its verified dir, whether or not it is embedded.
      build.onLoad({ filter: /.*/, namespace: "nlc-bins" }, (args) => ({
        loader: "js",
        contents: `export function getBinsDir() { const built = globalThis.__APPLIANCE_ENGINE_BINS__?.[${JSON.stringify(args.path)}]; ` +
          (embedded.has(args.path)
            ? `return { binsDir: built ?? globalThis.__APPLIANCE_BINS_DIR__, packageVersion: ${JSON.stringify(nlcVersion)} }; }`
            : `return built ? { binsDir: built, packageVersion: ${JSON.stringify(nlcVersion)} } : { binsDir: undefined, packageVersion: "not-embedded" }; }`),
      }));
      build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]utils[\\/]getModuleVersion\.js$/ }, () => ({
        loader: "js", contents: `export async function getModuleVersion() { return ${JSON.stringify(nlcVersion)}; }`,
      }));
      build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]bindings[\\/]utils[\\/]binariesGithubRelease\.js$/ }, () => ({
        loader: "js",
        contents: `export async function getBinariesGithubRelease() { return ${JSON.stringify(llamaCppRelease)}; }
export async function setBinariesGithubRelease() { throw new Error("read-only in the compiled binary"); }
export const builtinLlamaCppRelease = ${JSON.stringify(llamaCppRelease)};
export const defaultLlamaCppRelease = ${JSON.stringify(llamaCppRelease)};`,
      }));
      // Its self-test re-runs its own file in a child process, impossible inside a binary (it warns on stdout
      // and assumes success). The libraries are sha256-verified and GPUs are preflighted by engine/gpu.ts instead.
      build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]bindings[\\/]utils[\\/]testBindingBinary\.js$/ }, () => ({
        loader: "js", contents: "export async function testBindingBinary() { return true; }",
      }));
      build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]utils[\\/]getGrammarsFolder\.js$/ }, () => ({
        loader: "js",
        contents: `export async function getGrammarsFolder() { return globalThis.__APPLIANCE_BINS_DIR__ + "/" + ${JSON.stringify(GRAMMARS_FOLDER)}; }`,
      }));
      // Its GGUF header reader reads 4 MiB ahead into two fresh buffers (50-70 ms of page faults per model load on
      // a VM); ours reads what the header needs (src/engine/gguf-fs-reader.ts).
      build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]gguf[\\/]fileReaders[\\/]GgufFsFileReader\.js$/ }, () => ({
        loader: "js",
        contents: `import { GgufReadOffset } from "../utils/GgufReadOffset.js";
import { GgufFileReader } from "./GgufFileReader.js";
import { ggufFsReader } from ${JSON.stringify(path.join(root, "src", "engine", "gguf-fs-reader.ts"))};
export const GgufFsFileReader = ggufFsReader(GgufFileReader, GgufReadOffset);`,
      }));
      // The remembered CPU variant is loaded directly; fallback/ is scanned only without one (build-cpu-backend.ts).
      build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/]bindings[\\/]Llama\.js$/ }, (args) => ({
        loader: "js", contents: cpuBackendHook(fs.readFileSync(args.path, "utf8")),
      }));
      // Helpers of paths the server never takes (downloads, llama.cpp builds, CLI output): stubs (build-nlc-trim.ts).
      trimNodeLlamaCpp(build);
      trimPromClient(build);
      lazyBuiltins(build, path.join(root, "node_modules"));
      plainFs(build);
      build.onLoad({ filter: /src[\\/]engine[\\/]native-assets\.ts$/ }, () => ({ loader: "ts", contents: nativeAssetsModule(packages, local) }));
      build.onLoad({ filter: /src[\\/]engine[\\/]engine-sources\.ts$/ }, () => ({ loader: "ts", contents: engineSourcesModule(sources) }));
    },
  };
}

/** The build's plugin as `bun run build` uses it on linux-x64 (tests bundle the program with it, without compiling). */
export const linuxPlugin = () => plugin(TARGETS["linux-x64"].packages, null, null);

/**
 * A digest of what the binary is built from: the sources, the build's own scripts, the locked dependencies (a dirty
 * tree included, which the commit does not tell apart). What a start remembers is keyed by it (src/integrity/start-memo.ts).
 */
export function sourceDigest(): string {
  const scripts = fs.readdirSync(path.join(root, "scripts")).filter((f) => /^build.*\.ts$/.test(f)).map((f) => path.join("scripts", f));
  // The unit and plist templates are embedded too (src/service/units.ts).
  const files = [...["src", "systemd", "launchd"].flatMap((d) => listFiles(path.join(root, d)).map((f) => path.join(d, f))), ...scripts, "package-lock.json"].sort();
  const hash = new Bun.CryptoHasher("sha256");
  for (const f of files) hash.update(`${f}\0`).update(fs.readFileSync(path.join(root, f))).update("\0");
  return hash.update(`node-llama-cpp ${nlcVersion}`).digest("hex").slice(0, 16);
}

function gitCommit(): string {
  if (!Bun.which("git")) return "unknown"; // spawnSync throws on a missing executable: a build without git still works
  const r = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: root, stderr: "ignore" });
  return r.exitCode === 0 ? r.stdout.toString().trim() : "unknown";
}

/** Which llama.cpp libraries to embed: node-llama-cpp's npm prebuilt ones, or our own OpenMP build (scripts/engine-build.ts). */
export type EngineChoice = "prebuilt" | "local" | "local-portable";

/** The local engine build for `engine`, or null (prebuilt) with a loud line saying why it is not used. */
async function localEngine(engine: EngineChoice, target: Target): Promise<EngineBuild | null> {
  if (engine === "prebuilt") return null;
  const r = target === "linux-x64" ? await engineBuild({ portable: engine === "local-portable" })
    : { skip: `--target ${target}: local engine builds are wired for linux-x64 only` };
  if ("skip" in r) {
    console.error(`!!! build: APPLIANCE_ENGINE=${engine} but no local engine: ${r.skip}\n!!! build: embedding node-llama-cpp's prebuilt libraries instead (no OpenMP)`);
    return null;
  }
  console.error(`build: embedding the local engine ${r.key.slice(0, 16)} (${Object.entries(r.cmakeOptions).map(([k, v]) => `${k}=${v}`).join(" ")}; ${r.compiler})`);
  return r;
}

/** What `build` hands Bun.build for one target (exported for tests/util/jit-policy.test.ts: the start-up options). */
export function bundleOptions(target: Target, out: string, local: EngineBuild | null, sources: SourceArchive | null, order?: string): Parameters<typeof Bun.build>[0] {
  const t = TARGETS[target];
  return {
    // src/launch.ts is the binary's entry: serve's huge-page re-exec happens before the program (src/main.ts, a second
    // entrypoint, main.js beside it) is loaded. The chat-template worker (engine/template-bound.ts) is a third.
    entrypoints: [path.join(root, "src", "launch.ts"), path.join(root, "src", "main.ts"), path.join(root, "src", "engine", "template-worker.ts")],
    // jitPolicy: JavaScriptCore's tier-up thresholds ×STARTUP_JIT_POLICY until the program says its start is over
    // (src/util/jit-policy.ts): code that runs once while serve starts stays in the interpreter instead of being
    // compiled on the same 2 CPUs that load the model.
    // bytecodeOrder: the bytecode a recorded run of this binary used first (scripts/bytecode-order.ts).
    compile: { target: t.bun, outfile: out, jitPolicy: STARTUP_JIT_POLICY, ...(order && { bytecodeOrder: order }) },
    // Code splitting: each command's modules, and serve's HTTP app (imported while llama.cpp builds the context), are
    // chunks of their own inside the binary, loaded when imported; one chunk was read and linked whole by every command.
    splitting: true,
    minify: { syntax: true, whitespace: true },
    // Precompiled JavaScriptCore bytecode in the binary: the start no longer parses the ~10 MB bundle (bundle
    // phase of `start phases` 280 -> 165 ms here, scripts/bench-cold.ts); the binary grows by ~12 MB.
    bytecode: true,
    format: "esm",
    sourcemap: "none",
    plugins: [plugin(t.packages, local, sources)],
    define: {
      APPLIANCE_BUILD: JSON.stringify({ commit: gitCommit(), source: sourceDigest(), llamaCpp: llamaCppRelease, target: local ? `${target}, local OpenMP engine` : target }),
      "process.env.NODE_ENV": JSON.stringify("production"),
      // The release public key `appliance update --signature` checks against (bun run release sets it; empty: none).
      APPLIANCE_RELEASE_PUBKEY: JSON.stringify(process.env.APPLIANCE_RELEASE_PUBKEY ?? ""),
    },
    // Download helpers of node-llama-cpp that the server never calls (it never downloads).
    external: ["@reflink/reflink"],
  } as Parameters<typeof Bun.build>[0];
}

export async function build(target: Target = "linux-x64", out = path.join(root, "dist", "appliance"), engine: EngineChoice = "prebuilt"): Promise<string> {
  const t = TARGETS[target];
  for (const pkg of t.packages) {
    if (!fs.existsSync(nm(pkg))) {
      throw new Error(`${pkg} is not installed (npm skips other platforms' prebuilt packages). ` +
        `For this target run: npm install --no-save --force ${pkg}@${nlcVersion}`);
    }
  }
  const local = await localEngine(engine, target);
  // The llama.cpp source `appliance engine build` compiles on a Linux target (cached: ~4 s once, then nothing).
  const made = target.startsWith("linux-") ? await engineSources() : { skip: `--target ${target}: engine builds on the target are wired for Linux only` };
  if ("skip" in made) console.error(`!!! build: no engine sources embedded (appliance engine build will say so): ${made.skip}`);
  const sources = "skip" in made ? null : made;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const bundle = async (order?: string) => {
    const result = await Bun.build(bundleOptions(target, out, local, sources, order));
    if (!result.success) {
      for (const log of result.logs) console.error(log);
      throw new Error("build failed");
    }
  };
  // With the bytecode a run of it used laid out first (scripts/bytecode-order.ts): a file given, or built once
  // unprofiled and run, where it runs here, then built again.
  const runsHere = process.platform === "linux" && process.arch === "x64" && target.startsWith("linux-x64");
  const given = runsHere ? givenBytecodeOrder() : undefined;
  if (!given) await bundle();
  if (!runsHere) return out;
  const order = given ? { file: given, done() {} } : await bytecodeOrder(out);
  if ("skip" in order) {
    console.error(`build: no bytecode order (${order.skip}): the binary is laid out unprofiled`);
    return out;
  }
  try {
    await bundle(order.file);
  } catch (e) {
    console.error(`build: laying the bytecode out by ${order.file} failed (${(e as Error).message}): built again unprofiled`);
    await bundle();
  } finally {
    order.done();
  }
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Bun.argv.slice(2), options: { target: { type: "string" }, out: { type: "string" }, engine: { type: "string" } } });
  const target = (values.target ?? "linux-x64") as Target;
  if (!(target in TARGETS)) { console.error(`unknown --target ${target} (known: ${Object.keys(TARGETS).join(", ")})`); process.exit(2); }
  const engine = (values.engine ?? process.env.APPLIANCE_ENGINE ?? "prebuilt") as EngineChoice;
  if (!["prebuilt", "local", "local-portable"].includes(engine)) { console.error(`unknown engine ${engine} (--engine / APPLIANCE_ENGINE: prebuilt, local, local-portable)`); process.exit(2); }
  const t0 = performance.now();
  const out = await build(target, values.out ? path.resolve(values.out) : path.join(root, "dist", target === "linux-x64" ? "appliance" : `appliance-${target}`), engine)
    .catch((e: Error) => { console.error(`build: ${e.message}`); process.exit(1); });

  console.log(`built ${path.relative(process.cwd(), out)} (${target}, ${(fs.statSync(out).size / 1e6).toFixed(0)} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
