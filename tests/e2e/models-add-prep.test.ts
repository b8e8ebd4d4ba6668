/**
 * `models add` leaves what its trial run learned where the first `serve` on that state dir looks for it
 * (integrity/serve-prep.ts): the native libraries unpacked in <stateDir>/native, the chat template's trial and the
 * chat wrapper in the start memo, the CPU variant it loaded. The compiled binary, as users run it: the first start then writes no library
 * and resolves no wrapper. On a state dir another account owns (root adding a model for the installed service),
 * nothing is left there.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel, tmpDir, untilListening, withTemplate } from "../helpers";
import { START_MEMO } from "../../src/integrity/start-memo";

let bin: string, model: string;
const running = new Set<Bun.Subprocess>();
beforeAll(async () => { bin = await builtBinary(); model = await tinyModel(); }, 600_000);
afterAll(() => { for (const p of running) p.kill("SIGKILL"); });

function run(args: string[], home: string) {
  const r = Bun.spawnSync([bin, ...args], { env: { PATH: "/usr/bin:/bin", HOME: home } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** Every file under `dir` with its inode and mtime (what a rewrite would change). */
function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name), st = fs.statSync(p);
    out[path.relative(dir, p)] = `${st.ino}:${st.mtimeMs}`;
  }
  return out;
}

test("after models add, the first serve checks the libraries the trial unpacked and rebuilds the remembered wrapper", async () => {
  const home = tmpDir(), stateDir = path.join(home, "state");
  const added = run(["models", "add", model, "--state-dir", stateDir], home);
  expect(added.code).toBe(0);
  const sha256 = added.out.split(/\s/)[0]!;
  const memo = JSON.parse(fs.readFileSync(path.join(stateDir, START_MEMO), "utf8")) as { models: Record<string, Record<string, { template?: true; wrapper?: { type: string } }>> };
  const facts = Object.values(memo.models[sha256] ?? {});
  expect(facts).toHaveLength(1);
  expect(facts[0]!.template).toBe(true);
  expect(facts[0]!.wrapper?.type).toBeString();
  const native = path.join(stateDir, "native");
  expect(fs.readdirSync(native, { withFileTypes: true }).map((e) => e.isDirectory())).toEqual([true]); // one version dir, nothing beside it
  const before = files(native);
  expect(Object.keys(before).some((f) => f.endsWith(".so"))).toBe(true);

  const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0"], { stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin", HOME: home } });
  running.add(proc);
  const { log } = await untilListening(proc, "serve");
  const loaded = log().split("\n").find((l) => l.includes('"msg":"model loaded"'))!;
  expect(JSON.parse(loaded).chatWrapper).toBe("remembered");
  // The CPU variant the trial loaded (linux-x64's bundle has one library per instruction-set level: cpu-backend.ts).
  const cpu = log().split("\n").find((l) => l.includes('"msg":"cpu backend"'));
  if (process.platform === "linux" && process.arch === "x64") expect(JSON.parse(cpu ?? "{}").how).toBe("remembered");
  expect(files(native)).toEqual(before); // checked, not written again
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
  running.delete(proc);
}, 180_000);

test("three models add at once on a new state dir all succeed (their trial runs unpack into one native dir)", async () => {
  // Three rounds: before the native dir's lock, one round in two or three lost a trial run to another's clean-up
  // (ENOENT renaming its temp file, removed by the other as an unlisted entry).
  for (let round = 0; round < 3; round++) {
    const home = tmpDir(), stateDir = path.join(home, "state");
    const procs = [1, 2, 3].map((i) => Bun.spawn([bin, "models", "add", model, "--name", `m${i}`, "--state-dir", stateDir],
      { stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin", HOME: home } }));
    // Each may say that it waits for another's lock on the libraries (native-lock-wait.test.ts) or on the manifest
    // (models-dir-faults.test.ts); nothing else.
    const said = (err: string) => err.split("\n").filter((l) => l && !l.startsWith("waiting for another appliance process")
      && !/^waiting for \S+CHECKSUMS\.sha256\.lock: another process is changing this models dir's manifest$/.test(l)).join("\n");
    const results = await Promise.all(procs.map(async (p) => ({ code: await p.exited, err: said(await new Response(p.stderr).text()) })));
    expect(results).toEqual([1, 2, 3].map(() => ({ code: 0, err: "" })));
  }
}, 180_000);

test("a model refused by models add on a new state dir leaves no state dir behind", async () => {
  // A template serve's trial refuses (it raises); node-llama-cpp's own resolution falls back from it, so the trial
  // run passes and the refusal comes after the libraries were unpacked into the new state dir.
  const home = tmpDir(), stateDir = path.join(home, "state");
  const bad = await withTemplate("{{ raise_exception('no') }}", path.join(home, "bad.gguf"));
  const r = run(["models", "add", bad, "--state-dir", stateDir], home);
  expect(r.code).not.toBe(0);
  expect(r.err).toContain("bad.gguf");
  expect(fs.existsSync(stateDir)).toBe(false);
}, 180_000);

const asRoot = process.getuid?.() === 0;
if (!asRoot) console.warn("models-add-prep: SKIPPING the other-account case: it needs root (chowns the state dir to nobody)");
test.skipIf(!asRoot)("models add as root on a state dir another account owns leaves neither libraries nor a memo there", () => {
  const home = tmpDir(), stateDir = path.join(home, "state");
  fs.mkdirSync(stateDir, { mode: 0o700 });
  fs.chownSync(stateDir, 65534, 65534);
  const added = run(["models", "add", model, "--state-dir", stateDir], home);
  expect(added.code).toBe(0);
  expect(fs.existsSync(path.join(stateDir, START_MEMO))).toBe(false);
  expect(fs.existsSync(path.join(stateDir, "native"))).toBe(false);
  expect(fs.readdirSync(stateDir).filter((f) => f.startsWith(".preflight-"))).toEqual([]); // its temp dir removed
}, 180_000);
