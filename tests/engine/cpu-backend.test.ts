/**
 * The remembered CPU variant (src/engine/cpu-backend.ts). In-process: what a start arms from the remembered file and
 * how a scan's pick is read. On the compiled binary: the first start scans fallback/ and remembers the variant ggml
 * picked, the next loads that one library alone (and serves), a remembered variant that does not load falls back
 * to the scan, and every library mapped is one of the verified embedded files.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { CPU_BACKEND_FILE, CPU_MODALIAS, cpuBackend, mappedVariant } from "../../src/engine/cpu-backend";
import type { NativeBundle } from "../../src/engine/native-assets";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";

const asset = (name: string) => ({ name, path: "/nowhere", sha256: "0".repeat(64) });
const BUNDLE: NativeBundle = { version: "9.9.9-test+cpufb", folders: [{ folder: "linux-x64", assets: [
  asset("llama-addon.node"), asset("fallback/libggml-cpu-x64.so"), asset("fallback/libggml-cpu-haswell.so")] }] };
const cpu = fs.readFileSync(CPU_MODALIAS, "utf8").trim();

describe("in-process", () => {
  test("arms the remembered variant only for the same bundle and CPU, and only a variant of the bundle", () => {
    const state = tmpDir();
    const remember = (memo: object) => fs.writeFileSync(path.join(state, CPU_BACKEND_FILE), JSON.stringify(memo));
    expect(cpuBackend(state, "/n", false, BUNDLE)!.hook).toEqual({});
    remember({ native: BUNDLE.version, cpu, variant: "haswell" });
    expect(cpuBackend(state, "/n", false, BUNDLE)!.hook).toEqual({ path: "/n/linux-x64/fallback/libggml-cpu-haswell.so" });
    for (const memo of [{ native: "other", cpu, variant: "haswell" }, { native: BUNDLE.version, cpu: "another cpu", variant: "haswell" },
      { native: BUNDLE.version, cpu, variant: "../../evil" }, { native: BUNDLE.version, cpu, variant: "zen4" }]) {
      remember(memo);
      expect(cpuBackend(state, "/n", false, BUNDLE)!.hook).toEqual({});
    }
    // What the service account may plant there is no memo, and never hangs the start (operator run: a FIFO at the
    // start memo's path hung every start in open(); this file is read the same way).
    fs.rmSync(path.join(state, CPU_BACKEND_FILE));
    expect(Bun.spawnSync(["mkfifo", path.join(state, CPU_BACKEND_FILE)]).exitCode).toBe(0);
    expect(cpuBackend(state, "/n", false, BUNDLE)!.hook).toEqual({});
    fs.rmSync(path.join(state, CPU_BACKEND_FILE));
    fs.symlinkSync("/dev/zero", path.join(state, CPU_BACKEND_FILE));
    expect(cpuBackend(state, "/n", false, BUNDLE)!.hook).toEqual({});
    // Nothing to choose: a GPU start, a bundle without variants in fallback/.
    expect(cpuBackend(state, "/n", "cuda", BUNDLE)).toBeUndefined();
    expect(cpuBackend(state, "/n", false, { version: "v", folders: [{ folder: "linux-x64", assets: [asset("libggml-cpu-x64.so")] }] })).toBeUndefined();
  });
  test("a scan's pick is read from the process's mapped libraries under the folder's fallback/ only", () => {
    const maps = path.join(tmpDir(), "maps");
    fs.writeFileSync(maps, ["7f0-7f1 r-xp 00000000 08:01 12 /other/fallback/libggml-cpu-x64.so",
      "7f1-7f2 r-xp 00000000 08:01 13 /n/linux-x64/libggml-base.so", "7f2-7f3 r-xp 00000000 08:01 14 /n/linux-x64/fallback/libggml-cpu-zen4.so", ""].join("\n"));
    expect(mappedVariant("/n/linux-x64", maps)).toBe("zen4");
    expect(mappedVariant("/elsewhere", maps)).toBeUndefined();
  });
});

describe("compiled binary", () => {
  let dir: string, bin: string, stateDir: string;
  beforeAll(async () => {
    dir = tmpDir("appliance-cpu-");
    bin = path.join(dir, "appliance");
    fs.copyFileSync(await builtBinary(), bin);
    fs.chmodSync(bin, 0o755);
    stateDir = path.join(dir, "state");
    const r = Bun.spawnSync([bin, "models", "add", await tinyModel(), "--name", "tiny", "--state-dir", stateDir], { cwd: dir, env: { PATH: "/usr/bin:/bin", HOME: dir } });
    expect(r.exitCode).toBe(0);
    // models add's trial run loaded a variant as serve does and remembered it (integrity/serve-prep.ts); taken away
    // here so the first start below scans, and compared with that start's pick.
    trialPick = JSON.parse(fs.readFileSync(path.join(stateDir, CPU_BACKEND_FILE), "utf8")) as { variant: string };
    fs.rmSync(path.join(stateDir, CPU_BACKEND_FILE));
  });
  let trialPick: { variant: string };
  const procs: Bun.Subprocess[] = [];
  afterAll(() => { for (const p of procs) p.kill("SIGKILL"); });

  /** One start (auth off, loopback): the `cpu backend` line, the CPU variant libraries mapped, and a completion's status. */
  async function start() {
    const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "2", "--no-auth"],
      { cwd: dir, stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin", HOME: dir } });
    procs.push(proc);
    const { port, log } = await untilListening(proc);
    const line = log().split("\n").find((l) => l.includes('"msg":"cpu backend"'));
    const mapped = fs.readFileSync(`/proc/${proc.pid}/maps`, "utf8").split("\n").map((l) => /\s(\/\S*libggml-cpu\S*\.so)$/.exec(l)?.[1]).filter(Boolean);
    const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "hello", max_tokens: 2, temperature: 0 }) });
    await res.arrayBuffer();
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    return { cpuLine: line ? JSON.parse(line) as { variant?: string; how: string } : undefined, mapped: [...new Set(mapped)], status: res.status };
  }

  test("scans once, then loads the remembered variant alone; a remembered variant that does not load falls back to the scan", async () => {
    const first = await start();
    expect(first.status).toBe(200);
    const variant = first.cpuLine?.variant ?? "";
    expect(variant).toMatch(/^[\w.]+$/);
    expect(first.cpuLine).toMatchObject({ variant, how: "scanned" });
    expect(trialPick.variant).toBe(variant);
    const versionDir = fs.readdirSync(path.join(stateDir, "native"))[0]!;
    const folder = path.join(stateDir, "native", versionDir, "linux-x64");
    // The binding's folder holds no variant: they are all in fallback/, each one a verified embedded file.
    expect(fs.readdirSync(folder).filter((f) => f.startsWith("libggml-cpu-"))).toEqual([]);
    expect(fs.readdirSync(path.join(folder, "fallback")).length).toBeGreaterThan(1);
    expect(first.mapped).toEqual([path.join(folder, "fallback", `libggml-cpu-${variant}.so`)]);
    expect(JSON.parse(fs.readFileSync(path.join(stateDir, CPU_BACKEND_FILE), "utf8"))).toMatchObject({ native: versionDir, variant });

    const second = await start();
    expect(second.status).toBe(200);
    expect(second.cpuLine).toMatchObject({ variant, how: "remembered" });
    expect(second.mapped).toEqual(first.mapped);

    // A variant this CPU cannot run (ggml refuses it: score 0), or where the best is that one, another CPU's memory.
    const refused = variant === "sapphirerapids" ? undefined : "sapphirerapids";
    const memo = JSON.parse(fs.readFileSync(path.join(stateDir, CPU_BACKEND_FILE), "utf8")) as Record<string, string>;
    fs.writeFileSync(path.join(stateDir, CPU_BACKEND_FILE), JSON.stringify(refused ? { ...memo, variant: refused } : { ...memo, cpu: "another cpu" }));
    const third = await start();
    expect(third.status).toBe(200);
    expect(third.cpuLine).toMatchObject({ variant, how: "scanned" });
    expect(third.mapped).toEqual(first.mapped);
    expect(JSON.parse(fs.readFileSync(path.join(stateDir, CPU_BACKEND_FILE), "utf8"))).toMatchObject({ variant, cpu: memo.cpu });
  }, 180_000);
});
