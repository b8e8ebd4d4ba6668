/**
 * The built engine's housekeeping (issue 11 item 3): installEngine takes a lock (two `engine build` runs finishing
 * together wait for each other), removes the builds of other node-llama-cpp versions that are provably ours and
 * nothing else; uninstall's removal; the pre-start check decides with the root-written hash cache; serve's engine
 * choice is not written into its own APPLIANCE_ENGINE__* settings. Needs root: an engine dir is trusted only
 * root-owned all the way up (not under /tmp).
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { builtEngineDir, engineInfo, selectEngine } from "../../src/engine/engine-select";
import { installEngine, versionDirOf } from "../../src/engine/engine-store";
import { listEngineDir, removeBuiltEngines } from "../../src/engine/engine-versions";
import { NATIVE_HASH_CACHE } from "../../src/engine/native";
import { checkBuiltEngine } from "../../src/integrity/engine-check";
import { withFileLock } from "../../src/util/file-lock";

const root = process.geteuid?.() === 0;
if (!root) console.warn("engine-versions tests SKIPPED: they need root (a built engine is trusted only root-owned)");

const parents: string[] = [];
afterAll(() => { for (const d of parents) fs.rmSync(d, { recursive: true, force: true }); });

function parent() {
  const p = fs.mkdtempSync(path.join(os.homedir(), "appliance-engine-versions-"));
  parents.push(p);
  return p;
}

/** A compiled folder of two small files. */
function compiled(p: string, text = "addon bytes") {
  const dir = fs.mkdtempSync(path.join(p, "compiled-"));
  fs.writeFileSync(path.join(dir, "libllama.so"), "not really a library, but recorded like one");
  fs.writeFileSync(path.join(dir, "llama-addon.node"), text);
  return dir;
}

/** A stream's text as it arrives: until(s) resolves once it holds s, or the stream ended. */
function collect(stream: ReadableStream<Uint8Array>) {
  let text = "", ended = false;
  let waiters: ((ended?: boolean) => boolean)[] = [];
  const dec = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) { text += dec.decode(chunk, { stream: true }); waiters = waiters.filter((w) => !w()); }
    ended = true;
    for (const w of waiters) w(true);
  })();
  const until = (s: string) => new Promise<void>((resolve) => {
    const w = (end = ended) => { if (end || text.includes(s)) { resolve(); return true; } return false; };
    if (!w()) waiters.push(w);
  });
  return { text: () => text, until, done };
}

const record = (nlcVersion: string) => ({ folder: "linux-x64", nlcVersion, release: "test", commit: "0".repeat(40), gpu: false as const,
  portable: false, openmp: false, cmakeOptions: {}, compiler: "-", cmake: "-", seconds: 0, builtAt: new Date().toISOString() });

describe.skipIf(!root)("engine versions", () => {
  test("a build removes a killed install's staging dir and nothing else: other versions' builds stay (a rollback's binary loads its own)", () => {
    const p = parent(), dir = path.join(p, "engine");
    // Look like ours but are not: a version dir with a file no record describes, one without a record, a link.
    installEngine(dir, compiled(p), record("3.20.0"));
    fs.writeFileSync(path.join(dir, "3.20.0", "operator-notes.txt"), "mine");
    installEngine(dir, compiled(p), record("3.21.0"));
    fs.mkdirSync(path.join(dir, "3.19.0"));
    fs.symlinkSync(path.join(dir, "3.21.0"), path.join(dir, "3.18.0"));
    fs.mkdirSync(path.join(dir, "backups"));
    fs.mkdirSync(path.join(dir, ".staging-killed"));
    const { removed } = installEngine(dir, compiled(p), record("3.22.1"));
    // Before (review): 3.21.0 was removed too, and a rollback to the binary of that version found no engine.
    expect(removed.sort()).toEqual([path.join(dir, ".staging-killed")]);
    expect(listEngineDir(dir)).toEqual([
      { name: "3.18.0", ours: false, folders: [], why: "a symbolic link" },
      { name: "3.19.0", ours: false, folders: [], why: "no engine record (<folder>.json)" },
      { name: "3.20.0", ours: false, folders: ["linux-x64"], why: "holds operator-notes.txt, which no record describes" },
      { name: "3.21.0", ours: true, folders: ["linux-x64"] },
      { name: "3.22.1", ours: true, folders: ["linux-x64"] },
      { name: "backups", ours: false, folders: [], why: "not named like a node-llama-cpp version" },
    ]);
  });

  test("uninstall's removal: every build that is ours and the lock file; engine.dir itself once nothing else is in it", () => {
    const p = parent(), dir = path.join(p, "engine");
    installEngine(dir, compiled(p), record("3.22.1"));
    fs.mkdirSync(path.join(dir, "backups"));
    expect(removeBuiltEngines(dir, true)).toEqual({ removed: [path.join(dir, "3.22.1"), path.join(dir, ".install.lock")], left: [`${path.join(dir, "backups")} (not named like a node-llama-cpp version)`] });
    expect(fs.readdirSync(dir).sort()).toEqual([".install.lock", "3.22.1", "backups"]); // a dry run removes nothing
    removeBuiltEngines(dir);
    expect(fs.readdirSync(dir)).toEqual(["backups"]);
    fs.rmdirSync(path.join(dir, "backups"));
    installEngine(dir, compiled(p), record("3.22.1"));
    expect(removeBuiltEngines(dir).left).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });

  test("uninstall removes nothing from an engine.dir another user could have written to (review)", () => {
    const p = parent(), dir = path.join(p, "engine");
    installEngine(dir, compiled(p), record("3.22.1"));
    fs.chmodSync(dir, 0o777);
    // Before: the version dir, shaped like ours, was removed although anyone could have planted it.
    expect(removeBuiltEngines(dir)).toEqual({ removed: [], left: [`${dir} (not a directory only root can change: nothing in it removed)`] });
    expect(fs.readdirSync(dir).sort()).toEqual([".install.lock", "3.22.1"]);
    fs.chmodSync(dir, 0o755);
    fs.chownSync(dir, 65534, 65534);
    expect(removeBuiltEngines(dir).removed).toEqual([]);
    fs.chownSync(dir, 0, 0);
  });

  test("two installs into one engine.dir: the second waits for the first's lock, then installs whole", async () => {
    const p = parent(), dir = path.join(p, "engine");
    installEngine(dir, compiled(p), record("3.22.1")); // the lock file and dir exist, as after any build
    const src = compiled(p, "the second build");
    const script = `import { installEngine } from ${JSON.stringify(path.resolve(import.meta.dir, "../../src/engine/engine-store.ts"))};
      installEngine(${JSON.stringify(dir)}, ${JSON.stringify(src)}, ${JSON.stringify(record("3.22.1"))}, { onWait: () => console.log("waiting") });
      console.log("installed");`;
    let child!: ReturnType<typeof spawnInstall>;
    let out!: ReturnType<typeof collect>;
    const spawnInstall = () => Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    await withFileLock(path.join(dir, ".install"), async () => {
      child = spawnInstall();
      out = collect(child.stdout);
      // Until the child says it waits, or ends (without the lock it installs at once and prints "installed").
      await out.until("waiting");
      expect(out.text()).toBe("waiting\n");
      // Still holding the lock: the child has not touched the installed build.
      expect(fs.readFileSync(path.join(versionDirOf(dir, "3.22.1"), "linux-x64", "llama-addon.node"), "utf8")).toBe("addon bytes");
    });
    expect(await child.exited).toBe(0);
    await out.done;
    expect(out.text()).toBe("waiting\ninstalled\n");
    expect(fs.readFileSync(path.join(versionDirOf(dir, "3.22.1"), "linux-x64", "llama-addon.node"), "utf8")).toBe("the second build");
    expect(checkBuiltEngine({ engine: { use: "built", dir } }, "3.22.1").status).toBe("ok");
  }, 60_000);

  test("the pre-start check (verify --skip-models) takes unchanged files' sha256 from the root-written hash cache; the daily one reads every byte", () => {
    const p = parent(), dir = path.join(p, "engine");
    installEngine(dir, compiled(p), record("3.22.1"), { verify: true }); // as engine build: root writes the cache
    const versionDir = versionDirOf(dir, "3.22.1"), addon = path.join(versionDir, "linux-x64", "llama-addon.node");
    const cacheFile = path.join(versionDir, NATIVE_HASH_CACHE);
    const check = (cached: boolean) => checkBuiltEngine({ engine: { use: "built", dir } }, "3.22.1", cached);
    expect(check(true)).toMatchObject({ status: "ok", detail: expect.stringContaining("(2 of 2 unchanged since root hashed them: from the root-written hash cache)") });
    expect(check(false)).toMatchObject({ status: "ok", detail: expect.stringContaining("(every byte read)") });
    // A rewrite changes the file's ctime (no call can set it back): both checks hash it again and fail.
    const recorded = JSON.parse(fs.readFileSync(path.join(versionDir, "linux-x64.json"), "utf8")).files["llama-addon.node"] as string;
    fs.chmodSync(addon, 0o644); fs.writeFileSync(addon, "addon byteZ"); fs.chmodSync(addon, 0o444);
    for (const cached of [true, false]) expect(check(cached)).toMatchObject({ status: "fail", detail: expect.stringContaining(`${addon}: sha256`) });
    // What only the daily check detects: bytes that differ while the cache entry matches the file's identity and
    // times. Only root can write that entry (here the test, as root, forges it).
    const st = fs.statSync(addon, { bigint: true });
    const cache = JSON.parse(fs.readFileSync(cacheFile, "utf8"));
    cache.entries[addon] = { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), sha256: recorded };
    fs.chmodSync(cacheFile, 0o644); fs.writeFileSync(cacheFile, JSON.stringify(cache));
    expect(check(true).status).toBe("ok");
    expect(check(false)).toMatchObject({ status: "fail", detail: expect.stringContaining(`${addon}: sha256`) });
    // The cache's trust rules: writable by group, it is not used (every file hashed).
    fs.chmodSync(cacheFile, 0o664);
    expect(check(true)).toMatchObject({ status: "fail", detail: expect.stringContaining(`${addon}: sha256`) });
  });

  test("serve's engine choice stays out of its settings: APPLIANCE_ENGINE__* keep what the operator set; the preflight child gets the chosen dir", () => {
    const p = parent(), dir = path.join(p, "engine");
    installEngine(dir, compiled(p), record("3.22.1"), { verify: true });
    const saved = { use: process.env.APPLIANCE_ENGINE__USE, dir: process.env.APPLIANCE_ENGINE__DIR };
    process.env.APPLIANCE_ENGINE__USE = "auto";
    delete process.env.APPLIANCE_ENGINE__DIR;
    try {
      expect(selectEngine({ use: "auto", dir }, "3.22.1").engine).toBe("built");
      expect(process.env.APPLIANCE_ENGINE__USE).toBe("auto");
      expect(process.env.APPLIANCE_ENGINE__DIR).toBeUndefined();
      expect(builtEngineDir()).toBe(dir);
      expect(engineInfo("cpu")).toMatchObject({ kind: "built", folder: "linux-x64" });
    } finally {
      globalThis.__APPLIANCE_ENGINE_BINS__ = undefined; // this process runs other test files: the embedded engine again
      for (const [k, v] of [["APPLIANCE_ENGINE__USE", saved.use], ["APPLIANCE_ENGINE__DIR", saved.dir]] as const) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
    expect(builtEngineDir()).toBeUndefined();
    expect(engineInfo("cpu").kind).toBe("embedded");
  });
});
