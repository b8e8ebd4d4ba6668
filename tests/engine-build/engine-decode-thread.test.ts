/**
 * The built engine's decode-thread patch (src/engine/engine-decode-thread.ts): node-llama-cpp's addon ran every
 * llama_decode on whichever runtime pool thread took the async work, so each pool thread became an OpenMP master
 * with a team of its own (seen before the patch: two "Bun Pool 0" and two "Bun Pool 1" threads after a few chats
 * with 2 threads: each pool thread and the team thread it started). Patched, one native thread runs every decode.
 *
 * The source checks run everywhere: the patch against the node-llama-cpp installed here (anchors found once each,
 * the decode call replaced), the engine source archive `bun run build` embeds carries it, a changed addon stops the
 * patch naming the version, and compileEngine refuses sources without it. The engine check needs an engine that
 * `appliance engine build` made from patched sources (APPLIANCE_TEST_ENGINE_DIR, root, 2+ CPUs; skipped loudly
 * otherwise): after concurrent chats on the compiled binary with 2 threads and binding off (as the installed unit
 * runs it), exactly one master and one team thread carry the decode thread's name, no pool thread started a team,
 * and 4 concurrent greedy streams answer what 4 sequential ones do.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { compileEngine } from "../../src/engine/engine-compile";
import { DECODE_THREAD_FILE, DECODE_THREAD_NAME, DECODE_THREAD_PATCH, hasDecodeThreadPatch, patchDecodeThread } from "../../src/engine/engine-decode-thread";
import { sha256Bytes } from "../../src/util/sha256";
import { engineSources } from "../../scripts/engine-sources";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";
import { allowedCpus, ownTicks } from "../../src/engine/thread-sources";

const nlc = path.join(import.meta.dir, "../../node_modules/node-llama-cpp");
const nlcVersion = JSON.parse(fs.readFileSync(path.join(nlc, "package.json"), "utf8")).version as string;
const addonSource = () => fs.readFileSync(path.join(nlc, "llama", DECODE_THREAD_FILE), "utf8");
const count = (s: string, sub: string) => s.split(sub).length - 1;

describe("the decode-thread patch, on the source", () => {
  test("applies to this node-llama-cpp's decode worker: llama_decode is called only from the decode thread", () => {
    const before = addonSource();
    expect(hasDecodeThreadPatch(before)).toBe(false);
    const after = patchDecodeThread(before, nlcVersion);
    expect(hasDecodeThreadPatch(after)).toBe(true);
    // The worker's own call now goes through the helper; the only llama_decode call left is the helper's.
    expect(count(before, "llama_decode(ctx->ctx, ctx->batch)")).toBe(1);
    expect(count(after, "llama_decode(ctx->ctx, ctx->batch)")).toBe(0);
    expect(count(after, "appliance_decode_thread::decode(ctx->ctx, ctx->batch)")).toBe(1);
    expect(count(after, "llama_decode(c, b)")).toBe(1);
    expect(patchDecodeThread(after, nlcVersion)).toBe(after); // applying twice changes nothing
  });

  test("a decode worker that no longer matches stops the patch, naming the node-llama-cpp version", () => {
    const changed = addonSource().replace("int r = llama_decode(ctx->ctx, ctx->batch);", "int r = llama_decode(ctx->ctx, batch);");
    expect(() => patchDecodeThread(changed, "9.9.9")).toThrow(/node-llama-cpp 9\.9\.9.*expected 1/);
    const twice = addonSource().replace("int r = llama_decode(ctx->ctx, ctx->batch);", "int r = llama_decode(ctx->ctx, ctx->batch);\nint r = llama_decode(ctx->ctx, ctx->batch);");
    expect(() => patchDecodeThread(twice, "9.9.9")).toThrow(/has 2 occurrences/);
  });

  test("the engine source archive `bun run build` embeds carries the patch and records it", async () => {
    const cacheRoot = tmpDir("appliance-engine-src-test-");
    const made = await engineSources({ cacheRoot, log: () => {} });
    if ("skip" in made) throw new Error(`no engine sources here: ${made.skip}`);
    expect(made.patches).toContain(DECODE_THREAD_PATCH);
    const out = tmpDir("appliance-engine-src-x-");
    await new Bun.Archive(Bun.zstdDecompressSync(new Uint8Array(fs.readFileSync(made.file)))).extract(out);
    expect(hasDecodeThreadPatch(fs.readFileSync(path.join(out, "llama", DECODE_THREAD_FILE), "utf8"))).toBe(true);
  }, 120_000);

  test("compileEngine refuses sources without the patch (before configuring anything)", async () => {
    const work = tmpDir("appliance-engine-nopatch-");
    const tar = await new Bun.Archive({ [path.join("llama", DECODE_THREAD_FILE)]: addonSource() }).bytes();
    const zst = Bun.zstdCompressSync(tar);
    const file = path.join(work, "src.tar.zst");
    fs.writeFileSync(file, zst);
    const sources = { path: file, sha256: sha256Bytes(zst), bytes: zst.length, nlcVersion, release: "b0", commit: "0".repeat(40), patches: [] };
    const tools = { cmake: "/nonexistent/cmake", cc: "/nonexistent/cc", cxx: "/nonexistent/c++", generator: "Ninja" } as never;
    const wd = path.join(work, "wd");
    fs.mkdirSync(wd);
    await expect(compileEngine(sources, { gpu: false, portable: false, jobs: 1, tools, workDir: wd, log: () => {} }))
      .rejects.toThrow(new RegExp(`lack the ${DECODE_THREAD_PATCH} patch \\(node-llama-cpp ${nlcVersion.replace(/\./g, "\\.")}\\)`));
    expect(fs.existsSync(path.join(wd, "build"))).toBe(false);
  });
});

const dir = process.env.APPLIANCE_TEST_ENGINE_DIR;
const root = process.geteuid?.() === 0;
const cpus = allowedCpus()?.length ?? 0;
const ready = !!dir && root && cpus >= 2;
if (!ready) console.warn("engine-decode-thread engine test SKIPPED: it needs root, 2+ CPUs and APPLIANCE_TEST_ENGINE_DIR (an engine.dir made by `appliance engine build` from patched sources)");

/** Each thread of `pid`: its name and CPU ticks (utime + stime). */
function threads(pid: number): { name: string; ticks: number }[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((t) => {
    const ticks = ownTicks(fs.readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8")) ?? 0;
    return { name: fs.readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim(), ticks };
  });
}

describe.skipIf(!ready)("a patched built engine (compiled binary, 2 threads, binding off)", () => {
  test("one OpenMP master: exactly the decode thread and its one team thread, and concurrent streams answer as sequential ones", async () => {
    const work = tmpDir("appliance-engine-decode-thread-");
    const bin = path.join(work, "appliance"), stateDir = path.join(work, "state"), model = path.join(work, "tiny.gguf");
    fs.copyFileSync(await builtBinary(), bin);
    fs.copyFileSync(await tinyModel(), model);
    const env = { PATH: "/usr/bin:/bin", HOME: work, APPLIANCE_ENGINE__DIR: dir!, APPLIANCE_ENGINE__USE: "built", OMP_PROC_BIND: "false" };
    expect(Bun.spawnSync([bin, "models", "add", model, "--state-dir", stateDir], { env }).exitCode).toBe(0);
    const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "2", "--parallel", "4", "--no-auth"], { cwd: work, env, stdout: "pipe", stderr: "pipe" });
    try {
      const { port, log } = await untilListening(proc);
      expect(JSON.parse(log().split("\n").find((l) => l.includes('"msg":"engine"'))!)).toMatchObject({ engine: "built" });
      const chat = async (content: string) => {
        const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content }], max_tokens: 24, temperature: 0 }) });
        expect(res.status).toBe(200);
        return ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
      };
      const prompts = ["one", "two words", "three short words", "and four of them"];
      const sequential: string[] = [];
      for (const p of prompts) sequential.push(await chat(p));
      const concurrent = await Promise.all(prompts.map(chat));
      expect(concurrent).toEqual(sequential);
      const all = threads(proc.pid);
      // Before the patch each runtime pool thread that ran a decode started a team thread named like itself
      // (seen: "Bun Pool 0" and "Bun Pool 1" twice each).
      const pool = all.filter((t) => t.name.startsWith("Bun Pool")).map((t) => t.name);
      expect(pool.filter((n, i) => pool.indexOf(n) !== i)).toEqual([]);
      // The decode thread and the one team thread it started (team threads take their creator's name).
      const decode = all.filter((t) => t.name === DECODE_THREAD_NAME);
      expect(decode.length).toBe(2);
      expect(decode.reduce((n, t) => n + t.ticks, 0)).toBeGreaterThan(0);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 180_000);
});
