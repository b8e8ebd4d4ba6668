/**
 * An OpenMP engine built by `appliance engine build` runs with its team threads bound to cores (OMP_PROC_BIND=close,
 * OMP_PLACES=cores, src/engine/engine-build-env.ts): unbound, the kernel moved the team's threads between cores and
 * every barrier in a decode step woke a migrated thread (2-thread decode 0.69-0.78 of llama-server vs 0.93-1.00
 * bound, bench-engine-built). Seen here through the compiled binary: after a chat, the process has threads whose
 * allowed CPUs are one core; an operator's OMP_PROC_BIND=false keeps every thread free. On a live systemd: the
 * hardened unit's SystemCallFilter denies @resources, which holds sched_setaffinity: binding asked for there ended
 * the service at its first 2-thread decode (libgomp could not start a team thread), so serve asks for it only where
 * the call is permitted, and the README's drop-in allowing that one call binds them.
 *
 * Needs root and a real OpenMP engine (a compile takes ~15 min on 2 cores): APPLIANCE_TEST_ENGINE_DIR names an
 * engine.dir that `appliance engine build` made (root-owned). CI has none, so these tests skip there, loudly.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { DEFAULTS } from "../../src/config/load";
import { installEngine, versionDirOf, type EngineRecord } from "../../src/engine/engine-store";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";
import { active, curl, journal, printedKey, put, unitProp } from "../live/client";
import { bootOrSkip } from "../live/systemd";
import { allowedCpus } from "../../src/engine/thread-sources";

const dir = process.env.APPLIANCE_TEST_ENGINE_DIR;
const root = process.geteuid?.() === 0;
const cpus = allowedCpus()?.length ?? 0;
const ready = !!dir && root && cpus >= 2;
if (!ready) console.warn("engine-binding tests SKIPPED: they need root, 2+ CPUs and APPLIANCE_TEST_ENGINE_DIR (an engine.dir made by `appliance engine build`)");

/** Each thread's allowed CPU list, by thread name. */
function threadCpus(pid: number): { name: string; cpus: string }[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((t) => {
    const s = fs.readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
    return { name: s.match(/^Name:\s*(.*)$/m)![1]!, cpus: s.match(/^Cpus_allowed_list:\s*(.+)$/m)![1]! };
  });
}
const single = (c: string) => /^\d+$/.test(c);

async function chatOnEngine(extraEnv: Record<string, string>, threadsFlag = ["--threads", "2"]) {
  const work = tmpDir("appliance-engine-binding-");
  const bin = path.join(work, "appliance"), stateDir = path.join(work, "state"), model = path.join(work, "tiny.gguf");
  fs.copyFileSync(await builtBinary(), bin);
  fs.copyFileSync(await tinyModel(), model);
  const env = { PATH: "/usr/bin:/bin", HOME: work, APPLIANCE_ENGINE__DIR: dir!, APPLIANCE_ENGINE__USE: "built", ...extraEnv };
  expect(Bun.spawnSync([bin, "models", "add", model, "--state-dir", stateDir], { env }).exitCode).toBe(0);
  const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", ...threadsFlag, "--no-auth"], { cwd: work, env, stdout: "pipe", stderr: "pipe" });
  try {
    const { port, log } = await untilListening(proc);
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, temperature: 0 }) });
    expect(res.status).toBe(200);
    const engine = JSON.parse(log().split("\n").find((l) => l.includes('"msg":"engine"'))!) as { engine: string; omp?: Record<string, string> };
    return { engine, threads: threadCpus(proc.pid), unboundWarning: log().includes("OpenMP thread binding not in effect"),
      lines: log().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
}

describe.skipIf(!ready)("a built OpenMP engine's threads (compiled binary, as root)", () => {
  test("by default its team threads are bound to one core each, and the start line says so", async () => {
    const { engine, threads, unboundWarning } = await chatOnEngine({});
    expect(engine.engine).toBe("built");
    expect(engine.omp).toMatchObject({ OMP_PROC_BIND: "close", OMP_PLACES: "cores" });
    // Before: no thread of the process was bound (every one allowed on all CPUs).
    expect(threads.filter((t) => single(t.cpus)).length).toBeGreaterThanOrEqual(2);
    expect(unboundWarning).toBe(false);
  }, 120_000);

  // bench-peer, 28 M, built engine: 4 streams 0.76 of llama-server with the default (adaptive) threads, 1.37 with
  // --threads 2. libgomp had bound the main thread to one CPU as it loaded, and the governor then read the process's
  // CPUs from it: one, so it never used a second thread.
  test("the adaptive policy still counts every CPU the process may use, though binding pins the main thread", async () => {
    const { threads, lines } = await chatOnEngine({ APPLIANCE_LOG_LEVEL: "debug" }, []);
    expect(threads.find((t) => t.name === "exe" || t.name === "appliance")?.cpus).toMatch(/^\d+$/); // the main thread is bound
    const governor = lines.find((l) => String(l.msg).startsWith("cpu governor"));
    expect(governor?.cpus).toEqual(allowedCpus()); // was [0]
    // round(2 − others' CPU) is 1 only when others keep at least half a CPU busy: never on one CPU's count alone
    expect(lines.filter((l) => l.msg === "cpu threads changed" && l.threads === 1 && Number(l.othersCpu) < 0.5)).toEqual([]);
    // And no step tuner: it resized the OpenMP team between 1 and 2 threads (default 0.77-0.90 of llama-server,
    // --threads 2 0.96-1.13); decode steps take the governor's count.
    expect(lines.find((l) => l.msg === "model loaded")).toMatchObject({ adaptiveThreads: true, stepTuner: false, promptsOnAllThreads: true });
  }, 120_000);

  test("an operator's OMP_PROC_BIND=false is kept: no thread is bound", async () => {
    const { engine, threads, unboundWarning } = await chatOnEngine({ OMP_PROC_BIND: "false" });
    expect(engine.omp).toMatchObject({ OMP_PROC_BIND: "false" });
    expect(threads.filter((t) => single(t.cpus))).toEqual([]);
    expect(unboundWarning).toBe(false); // not asked for: nothing to warn about
  }, 120_000);
});

const live = ready ? await bootOrSkip("engine-build/engine-binding.test.ts") : undefined;
const T = 240_000;

describe.skipIf(!ready || !live)("live systemd: the hardened service's OpenMP threads", () => {
  test("unbound under the unit as installed (binding left off: it still serves 2-thread decodes); bound with the README's drop-in", async () => {
    const sys = live!;
    const bin = put(sys, await builtBinary(), "appliance");
    const model = put(sys, await tinyModel(), "tiny.gguf");
    // Two fixed threads: every decode starts an OpenMP team (the adaptive count may run 1 and never start one).
    const r = sys.exec([bin, "install", "--model", model, "--threads", "2"], { timeoutMs: T });
    expect(r.code, r.err).toBe(0);
    const key = printedKey(r.out);
    const versions = fs.readdirSync(dir!).filter((v) => /^\d/.test(v));
    const version = versions[0]!, folder = "linux-x64";
    const { files: _files, ...record } = JSON.parse(fs.readFileSync(path.join(dir!, version, `${folder}.json`), "utf8")) as EngineRecord;
    installEngine(path.join(sys.root, DEFAULTS.engine.dir), path.join(versionDirOf(dir!, version), folder), record);
    /** Restart, one chat, then each thread's allowed CPU list in the service. */
    const restartAndChat = () => {
      const restart = sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T });
      expect(restart.code, restart.err + journal(sys, "-u", "appliance.service", "-n", "30")).toBe(0);
      expect(active(sys)).toBe("active");
      const chat = curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { body: { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8 }, key });
      expect(chat.status, JSON.stringify(chat) + journal(sys, "-u", "appliance.service", "-n", "80") + sys.exec(["systemctl", "status", "appliance.service", "--no-pager", "-n", "0"]).out).toBe(200);
      const pid = unitProp(sys, "MainPID");
      return sys.exec(["sh", "-c", `grep -h Cpus_allowed_list /proc/${pid}/task/*/status`]).out.split("\n").filter(Boolean).map((l) => l.split(/\s+/)[1]!);
    };
    // Before: binding asked for under the unit's filter, libgomp could not start its team thread and ended the service
    // ("libgomp: Thread creation failed: Operation not permitted", exit 1) at the first 2-thread decode.
    expect(restartAndChat().filter(single)).toEqual([]);
    const lines = () => journal(sys, "-u", "appliance.service").split("\n");
    expect(lines().filter((l) => l.includes("OpenMP thread binding left off")).length).toBe(1);
    expect(lines().some((l) => l.includes("Thread creation failed"))).toBe(false);
    const dropIn = path.join(sys.root, "etc/systemd/system/appliance.service.d");
    fs.mkdirSync(dropIn, { recursive: true });
    fs.writeFileSync(path.join(dropIn, "affinity.conf"), "[Service]\nSystemCallFilter=sched_setaffinity\n");
    expect(sys.exec(["systemctl", "daemon-reload"], { timeoutMs: T }).code).toBe(0);
    // How many are bound depends on the thread count the service's policy picks (the thread that loaded libgomp always is).
    expect(restartAndChat().filter(single).length).toBeGreaterThanOrEqual(2);
    expect(lines().filter((l) => l.includes("OpenMP thread binding left off")).length).toBe(1); // none from the bound start
    expect(lines().some((l) => l.includes("not in effect"))).toBe(false);
  }, T);
});
