/**
 * The hash cache through the compiled binary run as root (issue 11 item 6): `models add` (root's own copy) and a
 * first start remember each model's sha256; the next start reads it from the cache (its `model checked` line says
 * so, and `start phases` times the start) and rebuilds the chat wrapper remembered in the state dir; a model tampered in place
 * with its times put back is refused.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { GeneralChatWrapper } from "node-llama-cpp";
import { describeWrapper, type WrapperChoice } from "../../src/engine/wrapper-choice";
import { hashCachePath } from "../../src/integrity/hash-cache";
import { START_MEMO } from "../../src/integrity/start-memo";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";

const root = process.geteuid?.() === 0;
if (!root) console.warn("hash-cache binary test SKIPPED: it needs root (the cache is trusted only for root-owned files)");

/** usage.prompt_tokens of a one-token chat with one user message. */
async function promptTokensOf(port: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hello world" }], max_tokens: 1 }) });
  expect(r.status).toBe(200);
  return ((await r.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
}

const lines = (text: string) => text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);

describe.skipIf(!root)("hash cache across starts of the compiled binary (as root)", () => {
  test("second start skips hashing; a tampered model is still refused", async () => {
    const bin = await builtBinary();
    const dir = tmpDir("appliance-hash-cache-bin-");
    const stateDir = path.join(dir, "state");
    const env = { PATH: "/usr/bin:/bin", HOME: dir, APPLIANCE_LOG_LEVEL: "debug" };
    expect(Bun.spawnSync([bin, "models", "add", await tinyModel(), "--name", "tiny", "--state-dir", stateDir], { env }).exitCode).toBe(0);
    const modelsDir = path.join(stateDir, "models"), model = path.join(modelsDir, "tiny.gguf");

    /** One start; with `chat`, the prompt tokens of a one-message chat (they show which chat wrapper rendered it). */
    const start = async (chat = false) => {
      const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "1", "--no-auth"],
        { cwd: dir, env, stdout: "pipe", stderr: "pipe" });
      try {
        const { log, port } = await untilListening(proc, "serve");
        const promptTokens = chat ? await promptTokensOf(port) : undefined;
        // `start phases` is written just after the listening line: poll for it (30 s deadline).
        for (const deadline = performance.now() + 30_000; !log().includes('"start phases"') && performance.now() < deadline;) await Bun.sleep(10);
        const all = lines(log());
        return { checked: all.find((l) => l.msg === "model checked"), phases: all.find((l) => l.msg === "start phases"), promptTokens };
      } finally {
        proc.kill("SIGTERM");
        await proc.exited;
      }
    };

    // models add copied the file itself as root and remembered it.
    expect((await start()).checked).toMatchObject({ model: "tiny", source: "hash cache" });
    fs.rmSync(hashCachePath(modelsDir));
    const first = await start();
    expect(first.checked).toMatchObject({ model: "tiny", source: "hashed" });
    expect(Object.keys(first.phases!.phases as object)).toEqual(expect.arrayContaining(
      ["bundle", "config", "model hash", "template preflight", "native check", "getLlama", "context", "audit tail", "listen"]));
    expect(fs.statSync(hashCachePath(modelsDir)).uid).toBe(0);
    const second = await start(true);
    expect(second.checked).toMatchObject({ model: "tiny", source: "hash cache", sha256: first.checked!.sha256 });

    // The chat wrapper the start resolved is remembered in the state dir, for these bytes and this build
    // (integrity/start-memo.ts, engine/wrapper-choice.ts) ...
    const memoFile = path.join(stateDir, START_MEMO);
    type Fact = { template?: true; wrapper?: WrapperChoice };
    const memo = JSON.parse(fs.readFileSync(memoFile, "utf8")) as { models: Record<string, Record<string, Fact>> };
    const builds = memo.models[first.checked!.sha256 as string]!;
    const [build] = Object.keys(builds);
    expect(build).toMatch(/^\S+ [0-9a-f]{16} bun /); // the build: the binary's digest of its sources (version.ts source)
    const remembered = builds[build!]!.wrapper!;
    expect([remembered.type, remembered.filename]).toEqual(["chatML", null]);
    // ... and the next start rebuilds it instead of resolving: a memo naming another wrapper (General) changes how
    // the same chat is rendered.
    builds[build!]!.wrapper = describeWrapper(new GeneralChatWrapper(), {})!;
    fs.writeFileSync(memoFile, JSON.stringify(memo));
    const forged = await start(true);
    expect(forged.promptTokens).toBeGreaterThan(0);
    expect(forged.promptTokens).not.toBe(second.promptTokens);

    // One byte past the header flipped in place, size and both times put back: only ctime differs.
    const ref = path.join(dir, "ref");
    fs.writeFileSync(ref, "");
    expect(Bun.spawnSync(["touch", "-r", model, ref]).exitCode).toBe(0);
    const fd = fs.openSync(model, "r+");
    const at = fs.fstatSync(fd).size - 10, b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);
    expect(Bun.spawnSync(["touch", "-r", ref, model]).exitCode).toBe(0);
    const refused = Bun.spawnSync([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "1", "--no-auth"], { cwd: dir, env });
    expect(refused.exitCode).toBe(4); // a failed integrity check: the unit does not restart it (RestartPreventExitStatus)
    expect(refused.stderr.toString()).toMatch(/does not match the manifest/);
  }, 180_000);
});
