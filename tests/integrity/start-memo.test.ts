/**
 * A server that is not root remembers what its start learned about a model's chat template (integrity/start-memo.ts):
 * the installed service runs as its own account, and the template trial and the chat wrapper were remembered only in
 * the models dir's hash cache, which only root writes, so every start of the service resolved the wrapper again
 * (150-450 ms of each start of the 28 M test model). Here the hash cache is not trusted (a manifest the service
 * account could write, or a non-root test run), as for the service's own writes.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { GeneralChatWrapper } from "node-llama-cpp";
import { describeWrapper } from "../../src/engine/wrapper-choice";
import { HashCache } from "../../src/integrity/hash-cache";
import { writeManifest } from "../../src/integrity/manifest";
import { resolveModels } from "../../src/integrity/resolve";
import { START_MEMO, StartMemo } from "../../src/integrity/start-memo";
import { sha256File } from "../../src/util/sha256";
import { tinyModel, tmpDir } from "../helpers";

async function untrustedModelsDir() {
  const stateDir = tmpDir("appliance-start-memo-");
  const dir = path.join(stateDir, "models");
  fs.mkdirSync(dir, { mode: 0o750 });
  const file = path.join(dir, "tiny.gguf");
  fs.copyFileSync(await tinyModel(), file);
  writeManifest(dir, [{ sha256: await sha256File(file), file: "tiny.gguf" }]);
  fs.chmodSync(path.join(dir, "CHECKSUMS.sha256"), 0o660); // group-writable: the hash cache is not used
  return { stateDir, config: { model: [] as string[], modelsDir: dir, stateDir, allowUnverified: false } };
}

const closeAll = (r: Awaited<ReturnType<typeof resolveModels>>) => { for (const m of r.models) fs.closeSync(Number(path.basename(m.path))); };

test("the wrapper and the template trial a start worked out are there at the next start, hash cache or not", async () => {
  const { stateDir, config } = await untrustedModelsDir();
  expect(HashCache.open(config.modelsDir).untrusted).toBeDefined();
  const first = await resolveModels(config);
  closeAll(first);
  const model = first.models[0]!;
  expect(model.hashed).toBe(true); // no hash cache here
  expect(model.wrapper!.choice).toBeUndefined();
  // What the engine reports once it resolved the wrapper (llama-load.ts → template-bound.ts).
  const choice = describeWrapper(new GeneralChatWrapper(), { filename: "3" })!;
  model.wrapper!.remember!(choice);

  const second = await resolveModels(config);
  closeAll(second);
  expect(second.models[0]!.wrapper!.choice).toEqual(choice);
  const builds = JSON.parse(fs.readFileSync(path.join(stateDir, START_MEMO), "utf8")).models[model.sha256];
  const [build] = Object.keys(builds);
  expect(build).toMatch(/ bun /);
  expect(builds[build!]).toEqual({ template: true, wrapper: choice }); // the trial passed and the wrapper, for this build
  expect(fs.statSync(path.join(stateDir, START_MEMO)).mode & 0o777).toBe(0o600);
});

test("what is planted at the memo's path (FIFO, a link to /dev/zero, a huge file, a directory) is an empty memo and never hangs or fills memory", () => {
  // Operator run: the service account's FIFO there hung every start in open() (systemd's start timeout, forever); a
  // link to /dev/zero grew the server by ~0.6 GB a second. A save replaces what is there, or says why it cannot.
  const sha = "c".repeat(64), choice = { type: "chatML", settings: 0, filename: null };
  const planted: [string, (f: string) => void][] = [
    ["FIFO", (f) => { expect(Bun.spawnSync(["mkfifo", f]).exitCode).toBe(0); }],
    ["link to /dev/zero", (f) => fs.symlinkSync("/dev/zero", f)],
    ["2 MB file", (f) => fs.writeFileSync(f, JSON.stringify({ version: 2, models: { [sha]: { b: { template: true, junk: "a".repeat(2 << 20) } } } }))],
  ];
  for (const [what, plant] of planted) {
    const stateDir = tmpDir("appliance-start-memo-");
    plant(path.join(stateDir, START_MEMO));
    const memo = StartMemo.open(stateDir);
    expect([what, memo.templatePassed(sha, "b")]).toEqual([what, false]);
    memo.rememberWrapper(sha, "b", choice);
    expect([what, memo.save()]).toEqual([what, true]);
    expect([what, fs.lstatSync(path.join(stateDir, START_MEMO)).isFile(), StartMemo.open(stateDir).wrapperChoice(sha, "b")]).toEqual([what, true, choice]);
  }
  const stateDir = tmpDir("appliance-start-memo-");
  fs.mkdirSync(path.join(stateDir, START_MEMO));
  const said: string[] = [];
  const memo = StartMemo.open(stateDir, (m) => said.push(m));
  memo.rememberTemplate(sha, "b");
  expect(memo.save()).toBe(false);
  expect(said).toEqual([expect.stringContaining("cannot be written")]);
});

test("only the checked fields are kept (what else is in an entry is dropped at the next save); two builds per model", () => {
  const stateDir = tmpDir("appliance-start-memo-");
  const sha = "d".repeat(64), file = path.join(stateDir, START_MEMO);
  fs.writeFileSync(file, JSON.stringify({ version: 2, models: { [sha]: { old: { template: true, junk: "x".repeat(1000), wrapper: { type: "general", settings: 0, filename: null, more: 1 } } } } }));
  const memo = StartMemo.open(stateDir);
  memo.rememberTemplate(sha, "new");
  memo.save();
  expect(JSON.parse(fs.readFileSync(file, "utf8")).models[sha]).toEqual({ old: { template: true, wrapper: { type: "general", settings: 0, filename: null } }, new: { template: true } });
  const third = StartMemo.open(stateDir);
  third.rememberTemplate(sha, "newer");
  third.save();
  // A rollback to the previous build finds its own; the oldest of three goes.
  expect(Object.keys(JSON.parse(fs.readFileSync(file, "utf8")).models[sha])).toEqual(["new", "newer"]);
});

test("an entry is for those bytes under this build only; a malformed memo is an empty one", () => {
  const stateDir = tmpDir("appliance-start-memo-");
  const memo = StartMemo.open(stateDir);
  const sha = "a".repeat(64), other = "b".repeat(64);
  const choice = { type: "general", settings: 0, filename: null };
  memo.rememberWrapper(sha, "build 1", choice);
  memo.rememberTemplate(sha, "build 1");
  expect(memo.save()).toBe(true);
  expect(memo.save()).toBe(false); // nothing new
  const again = StartMemo.open(stateDir);
  expect([again.wrapperChoice(sha, "build 1"), again.templatePassed(sha, "build 1")]).toEqual([choice, true]);
  expect([again.wrapperChoice(sha, "build 2"), again.templatePassed(sha, "build 2"), again.wrapperChoice(other, "build 1")]).toEqual([undefined, false, undefined]);
  fs.writeFileSync(path.join(stateDir, START_MEMO), "{not json");
  expect(StartMemo.open(stateDir).wrapperChoice(sha, "build 1")).toBeUndefined();
  fs.writeFileSync(path.join(stateDir, START_MEMO), JSON.stringify({ version: 2, models: { [sha]: { "build 1": { wrapper: { type: 5, settings: "x" } } } } }));
  expect(StartMemo.open(stateDir).wrapperChoice(sha, "build 1")).toBeUndefined();
});

test("the build kept beside the running one is the one used before it (A, B, A, C, then A is still remembered)", () => {
  const stateDir = tmpDir("appliance-start-memo-");
  const sha = "e".repeat(64);
  const start = (build: string) => { // what a start does: read, learn if new, save
    const memo = StartMemo.open(stateDir);
    const known = memo.templatePassed(sha, build);
    if (!known) memo.rememberTemplate(sha, build);
    memo.save();
    return known;
  };
  expect(["A", "B", "A", "C", "A"].map(start)).toEqual([false, false, true, false, true]);
});

test("processes that save the memo at once lose nothing of each other's (models add beside models add, beside serve)", () => {
  const stateDir = tmpDir("appliance-start-memo-");
  const a = "1".repeat(64), b = "2".repeat(64), c = "3".repeat(64);
  const choice = { type: "general", settings: 0, filename: null };
  const first = StartMemo.open(stateDir);
  first.rememberTemplate(a, "build 1");
  expect(first.save()).toBe(true);
  // Two more open the memo (each sees a) before either saves, as concurrent `models add` runs do.
  const second = StartMemo.open(stateDir), third = StartMemo.open(stateDir);
  second.rememberTemplate(b, "build 1");
  third.rememberWrapper(c, "build 1", choice);
  third.rememberTemplate(a, "build 2");
  expect(second.save()).toBe(true);
  expect(third.save()).toBe(true);
  const now = StartMemo.open(stateDir);
  expect([now.templatePassed(a, "build 1"), now.templatePassed(a, "build 2"), now.templatePassed(b, "build 1"), now.wrapperChoice(c, "build 1")])
    .toEqual([true, true, true, choice]);
  // The first, still open, learns its wrapper later (a server's first request): what the others saved stays.
  first.rememberWrapper(a, "build 1", choice);
  expect(first.save()).toBe(true);
  const last = StartMemo.open(stateDir);
  expect([last.wrapperChoice(a, "build 1"), last.templatePassed(a, "build 1"), last.templatePassed(b, "build 1"), last.wrapperChoice(c, "build 1")])
    .toEqual([choice, true, true, choice]);
});
