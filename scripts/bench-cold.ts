#!/usr/bin/env bun
/**
 * bun scripts/bench-cold.ts [--bin dist/appliance] [--runs 5] [--size 28] [--threads N] [--before BIN] [--env K=V,…] [--first-only]   (package.json: bench:cold)
 *
 * Cold start to /health, the appliance (compiled binary, as users run it: auth, guards, audit on) against the peer
 * llama-server (scripts/peer-build.ts) on the same generated F32 GGUF, runs alternated (ABBA), medians, the 1-minute
 * load average at the start and end of each row. The appliance rows:
 * - "state kept": a restart with its state in place (models added, native libraries unpacked, hash cache and
 *   template/wrapper trial remembered by a previous start), serve run directly: it re-executes itself once for
 *   huge-page malloc where the machine calls for it (util/huge-pages.ts);
 * - "state kept, unit environment": the same with GLIBC_TUNABLES as the installed systemd unit sets it on this
 *   machine, so no re-exec (the unit's pre-start verify and sandbox set-up are not in it);
 * - "huge pages" and "4 KB pages": the kept state with the tunable set to 1, and with glibc's usual pages (no re-exec,
 *   no tunable), whichever the unit here has (install decides by the machine: util/huge-pages.ts);
 * - both page sizes again "with memory freed before each start": before every start of either side a child process
 *   touches 1 GiB and exits, and the row waits 2.5 s, the kernel's delay before it reports freed 2 MB blocks to a
 *   hypervisor (virtio-balloon free page reporting), so the start allocates memory the host must back again, as the
 *   first start after `models add`'s trial run or a restart some seconds after a stop does (where the host does not
 *   take freed memory back, these rows read as the ones without churn);
 * - "state removed": bench-peer's row (state dir deleted before each start; `models add` runs first, untimed: its trial
 *   run leaves the native libraries unpacked and the start memo written for the first start, integrity/serve-prep.ts);
 * - "state removed, then what models add prepared removed": the same with those removed again, so the start unpacks
 *   the libraries and resolves the chat wrapper itself (a build's first start with nothing prepared for it);
 * - as root only, "as the service account": the unit-environment row with serve run as another user (nobody, through
 *   setpriv) on a models dir root's `models add` filled (root:nogroup 0750), the native libraries `install
 *   --native-only` put in the root-owned system dir (removed after the row unless already there) and a state dir of
 *   its own, as the installed service runs (its account writes neither the hash cache nor anything root owns);
 * - "first completion 1 s after /health", last: a kept-state start (serve run directly) left alone for a second, then
 *   one completion (max_tokens 1, a 10-word prompt), its own time against llama-server's the same way: the first
 *   request of a server started a while ago (llama-server runs its model once before it answers /health, the
 *   appliance after: engine/llama.ts warmUp). Before each start the file that server maps (the appliance: the copy
 *   in its state dir) is put in the page cache as a user's is (bench-peer-lib.ts asUsersHaveIt), not as written.
 * Also prints the median of each phase serve logs in its `start phases` line, to see where the time goes, and of the
 * page faults the process had taken when /health answered (a start's first touches: fewer with its bytecode laid out by
 * a recorded run, scripts/bytecode-order.ts), and first
 * the time of `appliance --version` (loading the program, nothing else).
 * --before BIN: a second appliance binary (e.g. built at an earlier commit) started in the same rotation as --bin and
 * the peer, each row printing both against the same llama-server runs, so a before/after pair shares the load.
 * --env adds environment to every appliance start, as bench-peer's does: e.g. the engine `appliance engine build` made,
 * `--env APPLIANCE_ENGINE__DIR=/opt/e,APPLIANCE_ENGINE__USE=built` (a row's own settings, the unit's GLIBC_TUNABLES, win).
 * --first-only: only the "first completion 1 s after /health" row (and the --version line).
 * Needs a built binary; exits 1 naming what is missing when the peer cannot be built.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { makeTinyModel } from "../src/engine/tiny-model";
import { usableCpus } from "../src/engine/cpu-budget";
import { peerBuild } from "./peer-build";
import { asUsersHaveIt, complete, envOf, freePort, listensOn, load1, median, prepareAppliance, spawnLogged, startPeer, started, stopServer, unitPageEnv, waitHealthy, wordsPrompt, cpuLine, SHAPES } from "./bench-peer-lib";
import { HUGETLB_TUNABLE, REEXEC_MARK } from "../src/util/huge-pages";
import { SYSTEM_NATIVE_DIR } from "../src/engine/native";
import { START_MEMO } from "../src/integrity/start-memo";
import { TRIAL_LEAVES } from "../src/integrity/serve-prep";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  bin: { type: "string", default: "dist/appliance" }, runs: { type: "string", default: "5" }, size: { type: "string", default: "28" },
  threads: { type: "string" }, before: { type: "string" }, env: { type: "string", default: "" }, "first-only": { type: "boolean", default: false },
} });
const extraEnv = envOf(values.env);
const runs = Number(values.runs);
const threads = Number(values.threads ?? usableCpus().cpus);
const shape = SHAPES[values.size];
if (!shape) { console.error(`--size: one of ${Object.keys(SHAPES).join(", ")}`); process.exit(2); }
const bin = path.resolve(values.bin);
const bins = [bin, ...(values.before ? [path.resolve(values.before)] : [])];
for (const b of bins) if (!fs.existsSync(b)) { console.error(`${b} is missing: run \`bun run build\` first`); process.exit(1); }
const peer = await peerBuild();
if ("skip" in peer) { console.error(`bench-cold: no peer to compare with: ${peer.skip}`); process.exit(1); }
const peerServer = peer.llamaServer;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-cold-"));
fs.chmodSync(dir, 0o755); // the service-account row's user must reach its dirs inside
process.on("exit", () => { for (const p of started) p.kill("SIGKILL"); fs.rmSync(dir, { recursive: true, force: true }); });
const model = path.join(dir, "bench.gguf");
const { params } = await makeTinyModel(model, { ...shape, ctx: 2048 });
console.log(cpuLine());
if (values.env) console.log(`appliance starts run with ${values.env}`);
console.log(`bench-cold: ${bins.join(" vs ")}, model ${(params / 1e6).toFixed(1)} M params F32, threads ${threads}, runs ${runs} per side, uid ${process.getuid?.()}`);

/** A start to /health; `firstMs`: the first completion's own time, where the row sent one. */
type Start = { ms: number; phases: Record<string, number>; firstMs?: number; faults?: number };

/**
 * The page faults a process has taken (minor and major: /proc/<pid>/stat fields 10 and 12), read while it runs. A
 * start's count by /health is mostly first touches of the program's pages, its libraries' and its buffers'.
 */
function faultsOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[7]) + Number(f[9]);
  } catch {
    return undefined;
  }
}

/**
 * One appliance start to /health, timed exactly as the peer's (startPeer): the port picked here and handed to it, then
 * GET /health polled every 5 ms from the spawn. (bench-peer-lib's startAppliance reads a port-0 server's port from its
 * `listening` log line first, a second 5 ms poll llama-server's figure does not have.) Its `start phases` line is read
 * from its log, then it is stopped.
 */
/** The installed service's account stands in as nobody:nogroup. */
const NOBODY = 65534;

/** A models dir root filled and the account may read, and a state dir of the account's own (made once per binary). */
function prepareService(bin: string, home: string): string[] {
  const modelsDir = path.join(home, "models"), stateDir = path.join(home, "state");
  if (!fs.existsSync(stateDir)) {
    fs.mkdirSync(modelsDir, { recursive: true, mode: 0o750 });
    fs.chownSync(modelsDir, 0, NOBODY); // before models add: what it writes takes the dir's group, and a later chown would move ctime
    const r = Bun.spawnSync([bin, "models", "add", model, "--models-dir", modelsDir], { env: { PATH: "/usr/bin:/bin", HOME: home } });
    if (r.exitCode !== 0) throw new Error(`appliance models add: ${r.stderr.toString()}`);
    fs.mkdirSync(stateDir, { mode: 0o700 });
    fs.chownSync(stateDir, NOBODY, NOBODY);
  }
  return ["--state-dir", stateDir, "--models-dir", modelsDir];
}

/** What `models add` prepares for the first start on its state dir (integrity/serve-prep.ts), and the CPU variant a start remembers. */
const PREPARED = [...TRIAL_LEAVES, START_MEMO];

/** How long after /health the "first completion" row sends its request. */
const FIRST_AFTER_MS = 1_000;

async function appliance(env: Record<string, string> = {}, which = 0, asService = false, unprepared = false, firstAfter = 0): Promise<Start> {
  const logFile = path.join(dir, "serve.log");
  // Each binary its own state dir (under its own HOME-like dir): the --before binary may lay its libraries out differently.
  const home = path.join(dir, `${which ? "before" : ""}${asService ? "svc" : ""}`);
  fs.mkdirSync(home, { recursive: true, mode: 0o755 });
  const prep = asService ? undefined : prepareAppliance(bins[which]!, model, home);
  const dirs = prep ? ["--state-dir", prep.stateDir] : prepareService(bins[which]!, home);
  // The copy `models add` made is what serve maps (bench-peer-lib.ts asUsersHaveIt).
  if (firstAfter && prep) asUsersHaveIt(path.join(prep.stateDir, "models", path.basename(model)));
  if (unprepared) for (const p of PREPARED) fs.rmSync(path.join(home, "state", p), { recursive: true, force: true });
  const port = freePort();
  const as = asService ? ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"] : [];
  const { proc, t0 } = spawnLogged([...as, bins[which]!, "serve", ...dirs, "--port", String(port), "--threads", String(threads), "--parallel", "1",
    "--ctx-size", "2048", "--max-queue", "64"], { PATH: "/usr/bin:/bin", HOME: home, APPLIANCE_LOG_LEVEL: "debug", ...extraEnv, ...env }, logFile);
  const ms = await waitHealthy(`http://127.0.0.1:${port}`, t0, proc);
  const faults = faultsOf(proc.pid);
  // The port was free when picked: make sure what answered is this process (as startPeer does).
  const ours = listensOn(proc.pid, port);
  let firstMs: number | undefined;
  if (ours && firstAfter && prep) {
    await Bun.sleep(firstAfter);
    const served = { name: "appliance", base: `http://127.0.0.1:${port}`, headers: { authorization: `Bearer ${prep.key}`, "content-type": "application/json" }, proc, stop: async () => {} };
    firstMs = (await complete(served, wordsPrompt(10), 1)).ms;
  }
  await stopServer(proc);
  if (!ours) throw new Error(`appliance: port ${port} answered but is not held by the appliance started on it (taken by another process)`);
  const line = fs.readFileSync(logFile, "utf8").split("\n").find((l) => l.includes('"start phases"'));
  return { ms, phases: line ? (JSON.parse(line) as { phases: Record<string, number> }).phases : {}, firstMs, faults };
}

async function llamaServer(firstAfter = 0): Promise<Start> {
  if (firstAfter) asUsersHaveIt(model);
  const s = await startPeer(peerServer, model, threads, 1);
  let firstMs: number | undefined;
  if (firstAfter) {
    await Bun.sleep(firstAfter);
    firstMs = (await complete(s, wordsPrompt(10), 1)).ms;
  }
  await s.stop();
  return { ms: s.startMs, phases: {}, firstMs };
}

/** Memory another process used and freed just before a start, as after `models add`'s trial run or a server that stopped. */
const CHURN_BYTES = 1 << 30;
/**
 * Linux reports freed 2 MB blocks to the hypervisor (virtio-balloon free page reporting) 2 s after they are freed
 * (mm/page_reporting.c, PAGE_REPORTING_DELAY); a block it reported is backed by the host again only when touched.
 */
const REPORTING_DELAY_MS = 2_500;
/** A child process touches CHURN_BYTES and exits; then the wait for the kernel to report the freed blocks. */
async function churnMemory() {
  const r = Bun.spawnSync([process.execPath, "-e", `Buffer.alloc(${CHURN_BYTES}, 1)`], { stdout: "ignore", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error(`the memory-churn child exited ${r.exitCode}`);
  await Bun.sleep(REPORTING_DELAY_MS);
}

const f = (x: number) => x.toFixed(0);
async function row(name: string, before: () => void, env: Record<string, string> = {}, asService = false, unprepared = false, churn = false) {
  const A: Start[][] = bins.map(() => []), B: number[] = [];
  const l0 = load1();
  const sides = [...bins.map((_, k) => k), -1]; // -1: the peer
  for (let i = 0; i < runs; i++) {
    for (const side of i % 2 ? [...sides].reverse() : sides) {
      if (churn) await churnMemory();
      if (side >= 0) { before(); A[side]!.push(await appliance(env, side, asService, unprepared)); } else B.push((await llamaServer()).ms);
    }
  }
  const b = median(B), l1 = load1();
  bins.forEach((which, k) => {
    const a = median(A[k]!.map((s) => s.ms));
    console.log(`cold start to /health, ${name}: appliance${k ? " (--before)" : ""} ${f(a)} ms, llama-server ${f(b)} ms, ratio ${(a / b).toFixed(2)}× longer ` +
      `(load ${l0.toFixed(2)}→${l1.toFixed(2)})${bins.length > 1 ? `, ${which}` : ""}`);
    const names = [...new Set(A[k]!.flatMap((s) => Object.keys(s.phases)))];
    const faults = A[k]!.flatMap((s) => s.faults ?? []);
    console.log(`  phases (median ms): ${names.map((n) => `${n} ${median(A[k]!.map((s) => s.phases[n] ?? 0))}`).join(", ")}` +
      (faults.length ? `; page faults by /health: ${median(faults)}` : ""));
  });
}

/** The first completion of a kept-state start left alone for FIRST_AFTER_MS, its own time, on each binary and llama-server. */
async function firstRow() {
  const A: number[][] = bins.map(() => []), B: number[] = [];
  const l0 = load1();
  const sides = [...bins.map((_, k) => k), -1];
  for (let i = 0; i < runs; i++) {
    for (const side of i % 2 ? [...sides].reverse() : sides) {
      if (side >= 0) A[side]!.push((await appliance({}, side, false, false, FIRST_AFTER_MS)).firstMs!);
      else B.push((await llamaServer(FIRST_AFTER_MS)).firstMs!);
    }
  }
  const b = median(B), l1 = load1();
  bins.forEach((which, k) => {
    const a = median(A[k]!);
    console.log(`first completion ${FIRST_AFTER_MS / 1000} s after /health (max_tokens 1, its own time), state kept: appliance${k ? " (--before)" : ""} ${a.toFixed(1)} ms, ` +
      `llama-server ${b.toFixed(1)} ms, ratio ${(a / b).toFixed(2)}× longer (load ${l0.toFixed(2)}→${l1.toFixed(2)})${bins.length > 1 ? `, ${which}` : ""}`);
  });
}

/** Program load alone: `appliance --version` (no model, no server), median wall time of 15 runs. */
function versionMs(b = bin): number {
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    const r = Bun.spawnSync([b, "--version"], { stdout: "ignore", stderr: "ignore" });
    if (r.exitCode !== 0) throw new Error(`${b} --version exited ${r.exitCode}`);
    times.push(performance.now() - t0);
  }
  return median(times);
}
const l0 = load1();
for (const b of bins) console.log(`appliance --version (program load alone): ${f(versionMs(b))} ms, median of 15 (load ${l0.toFixed(2)}→${load1().toFixed(2)})${bins.length > 1 ? `, ${b}` : ""}`);

// The first start of a fresh state: unpacks the libraries, remembers what the kept-state rows (and the first-completion
// row's starts) reuse.
for (let k = 0; k < bins.length; k++) await appliance({}, k);
if (!values["first-only"]) {
  await row("state kept", () => undefined);
  // systemd/appliance.service's Environment= line on this machine (bench-peer-lib.ts unitPageEnv).
  const { env: unitEnv, line } = unitPageEnv();
  console.log(line);
  await row(`state kept, unit environment (${unitEnv.GLIBC_TUNABLES}, no re-exec)`, () => undefined, unitEnv);
  // Huge pages against 4 KB pages, with settled memory and right after another process freed 1 GiB (both sides
  // churned alike): on a VM that reports freed memory to its host, a reported 2 MB block faults there again.
  const pages = { "huge pages": { GLIBC_TUNABLES: HUGETLB_TUNABLE }, "4 KB pages": { [REEXEC_MARK]: "1" } }; // the mark: no re-exec, glibc's usual pages
  for (const [name, env] of Object.entries(pages)) await row(`state kept, ${name} (no re-exec)`, () => undefined, env);
  for (const [name, env] of Object.entries(pages)) {
    await row(`state kept, ${name}, ${CHURN_BYTES >> 20} MiB freed by another process ${REPORTING_DELAY_MS / 1000} s before each start (either side)`, () => undefined, env, false, false, true);
  }
  if (process.getuid?.() === 0) {
    // The installed service loads the libraries install wrote into the root-owned system dir, checked against root's
    // digest cache (engine/native.ts); without that dir the account unpacks its own copy, which it must hash at every
    // start (~40 ms here, a cost the installed service does not have). So `install --native-only` (what install and
    // update run) for this row, removed again after it unless it was there before.
    const systemNative = path.dirname(SYSTEM_NATIVE_DIR), had = fs.existsSync(systemNative);
    const removeSystem = () => { if (!had) fs.rmSync(systemNative, { recursive: true, force: true }); };
    process.on("exit", removeSystem);
    for (const b of bins) {
      const r = Bun.spawnSync([b, "install", "--native-only"], { env: { PATH: "/usr/bin:/bin", HOME: dir } });
      if (r.exitCode !== 0) throw new Error(`${b} install --native-only: ${r.stderr.toString()}`);
    }
    // The first start as that account works out what it then remembers (start-memo.ts), as the unit's first start does.
    for (let k = 0; k < bins.length; k++) await appliance(unitEnv, k, true);
    await row("state kept, unit environment, as the service account (nobody; root's models dir and native libraries)", () => undefined, unitEnv, true);
    removeSystem();
  }
  const removeState = () => { for (const d of [dir, path.join(dir, "before")]) fs.rmSync(path.join(d, "state"), { recursive: true, force: true }); };
  await row("state removed", removeState);
  // A build's first start with nothing prepared for it: what a hand-run server's first start after an update pays (the
  // libraries and the memo are per build), and an older binary's first start after models add.
  await row("state removed, then what models add prepared removed (native libraries, start memo)", removeState, {}, false, true);
}
// Last, as it changes how the model is in the page cache for whatever runs after it.
await firstRow();
