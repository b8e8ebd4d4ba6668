#!/usr/bin/env bun
/**
 * bun scripts/bench-threads.ts [--size 28|155] [--runs N] [--tokens N] [--burners 0,1] [--binary PATH] [--env K=V,…]
 *
 * Which inference thread count is best, idle and next to busy neighbours (issue 11 item 4). Drives the compiled
 * binary over HTTP (dist/appliance, copied first so a rebuild mid-run cannot change it): one server per setting,
 * `--threads 1` … `--threads <usable CPUs>` plus one with no --threads (the default policy), all started up front on
 * the same generated GGUF. For each condition it starts N CPU burners itself (`yes` into /dev/null, one process
 * each), then measures every server in rotated order, `--runs` times (interleaved, so drifting load hits every
 * setting alike):
 *  - decode tok/s: one greedy /v1/completions of --tokens tokens (end tokens banned), completion_tokens / wall time;
 *  - prefill tok/s: a ~400-token prompt with max_tokens 1, prompt_tokens / wall time (HTTP overhead included).
 * Prints one row per setting and condition with the medians, the 1-minute load average at start → end of the
 * condition, the CPU used meanwhile by processes outside the benchmark, each setting's ratios to the best fixed
 * setting of that condition, and the default's logged thread changes. Each measurement follows a --gap-ms pause,
 * so a server never starts right after another one's burst (the default policy reacts to what it just saw).
 * Hold the CPU lock for the whole run (`flock /tmp/appliance-cpu.lock bun scripts/bench-threads.ts`).
 * --env adds environment to every server, e.g. a built engine: `--env APPLIANCE_ENGINE__DIR=DIR,APPLIANCE_ENGINE__USE=built`.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { usableCpus } from "../src/engine/cpu-budget";
import { makeTinyModel } from "../src/engine/tiny-model";
import { allowedCpus, busyTicks, ownTicks } from "../src/engine/thread-sources";
import { complete, envOf, load1, median, startAppliance, started, wordsPrompt, type Served, cpuLine, SHAPES } from "./bench-peer-lib";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  size: { type: "string", default: "28" }, runs: { type: "string", default: "5" }, tokens: { type: "string", default: "64" },
  burners: { type: "string", default: "0,1" }, binary: { type: "string" }, env: { type: "string", default: "" }, "gap-ms": { type: "string", default: "1000" },
} });
const shape = SHAPES[values.size];
if (!shape) throw new Error(`--size: ${values.size} is not one of ${Object.keys(SHAPES).join(", ")}`);
const runs = Number(values.runs), maxTokens = Number(values.tokens), gapMs = Number(values["gap-ms"]);
const burnerCounts = values.burners.split(",").map(Number);
const cpus = usableCpus().cpus;

const built = path.resolve(values.binary ?? path.join(import.meta.dir, "../dist/appliance"));
if (!fs.existsSync(built)) { console.error(`${built} is missing: run \`bun run build\` first`); process.exit(1); }
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-threads-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
const bin = path.join(dir, "appliance");
fs.copyFileSync(built, bin);
fs.chmodSync(bin, 0o755);
const model = path.join(dir, "bench.gguf");
const { params } = await makeTinyModel(model, { ...shape, ctx: 2048 });

const f = (x: number, d = 1) => x.toFixed(d);
console.log(cpuLine());
console.log(`model ${f(params / 1e6)} M params F32; ${os.cpus().length} online CPUs, ${cpus} usable; bun ${Bun.version}; ` +
  `${runs} interleaved runs per setting; decode ${maxTokens} tokens; HTTP to the compiled binary${values.env ? `; servers run with ${values.env}` : ""}`);

/** `appliance serve` as shipped, at debug log level into a file (the default's "cpu threads changed" lines are read). */
async function start(threads: number): Promise<Served & { logFile: string }> {
  const home = path.join(dir, `t${threads}`), logFile = path.join(home, "serve.log");
  fs.mkdirSync(home, { recursive: true });
  const s = await startAppliance(bin, model, home, threads, 1, { name: `t${threads}`, env: { ...envOf(values.env), APPLIANCE_LOG_LEVEL: "debug" }, logFile });
  return { ...s, logFile };
}
/** The default server's governor changes and step-tuner choices logged since byte `from` of its log. */
function changes(logFile: string, from: number): { governor: string[]; tuner: string[] } {
  const lines = fs.readFileSync(logFile, "utf8").slice(from).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    governor: lines.filter((l) => l.msg === "cpu threads changed").map((c) => `${c.from}→${c.threads} (others ${c.othersCpu})`),
    tuner: lines.filter((l) => l.msg === "decode step threads").map((c) => `batch ${c.batch}: ${c.from}→${c.threads} (median ms/step ${JSON.stringify(c.medianMs)})`),
  };
}

/** CPU seconds spent on this benchmark's CPUs (its affinity) by everything but its own processes (servers, burners, itself). */
const benchCpus = new Set(allowedCpus() ?? os.cpus().map((_, i) => i));
function foreignCpu(pids: number[]): number {
  const read = (file: string) => { try { return fs.readFileSync(file, "utf8"); } catch { return undefined; } }; // a process that ended counts 0
  const busy = busyTicks(read("/proc/stat") ?? "", benchCpus) ?? 0;
  const ours = pids.reduce((sum, pid) => { const stat = read(`/proc/${pid}/stat`); return sum + (stat ? ownTicks(stat) ?? 0 : 0); }, 0);
  return (busy - ours) / 100; // USER_HZ
}

// One server per setting; 0 = no --threads flag (the default policy). Each has its own state dir and key.
const settings = [...Array.from({ length: cpus }, (_, i) => i + 1), 0];
const servers = new Map<number, Served & { logFile: string }>();
for (const t of settings) servers.set(t, await start(t));

const burners: Bun.Subprocess[] = [];
const burn = (n: number) => {
  while (burners.length < n) { const p = Bun.spawn(["yes"], { stdout: "ignore", stderr: "ignore" }); started.add(p); burners.push(p); }
  while (burners.length > n) { const p = burners.pop()!; started.delete(p); p.kill("SIGKILL"); }
};
process.on("exit", () => burn(0));

const longPrompt = () => wordsPrompt(400);
const decode = (s: Served) => complete(s, wordsPrompt(10), maxTokens).then((c) => c.completionTokens / (c.ms / 1000));
const prefill = (s: Served) => complete(s, longPrompt(), 1).then((c) => c.promptTokens / (c.ms / 1000));

const label = (t: number) => (t === 0 ? "default" : `--threads ${t}`);
for (const n of burnerCounts) {
  burn(n);
  const logAt = fs.statSync(servers.get(0)!.logFile).size; // the default's thread changes from here on (warm-up included)
  // Warm-up: one request per server under this condition (first requests pay page faults and allocations).
  for (const s of servers.values()) await decode(s);
  const l0 = load1(), t0 = performance.now();
  const ourPids = () => [process.pid, ...[...servers.values(), ...burners.map((proc) => ({ proc }))].map((s) => s.proc.pid)];
  const f0 = foreignCpu(ourPids());
  const D = new Map<number, number[]>(settings.map((t) => [t, []])), P = new Map<number, number[]>(settings.map((t) => [t, []]));
  for (let i = 0; i < runs; i++) {
    const order = settings.map((_, k) => settings[(k + i) % settings.length]!); // rotate who goes first
    for (const t of order) {
      // A quiet gap before each measurement: the previous server's work must not count as this one's neighbour.
      await Bun.sleep(gapMs);
      D.get(t)!.push(await decode(servers.get(t)!));
      await Bun.sleep(gapMs);
      P.get(t)!.push(await prefill(servers.get(t)!));
    }
  }
  const load = `${f(l0, 2)}→${f(load1(), 2)}`;
  const foreign = (foreignCpu(ourPids()) - f0) / ((performance.now() - t0) / 1000);
  const med = (m: Map<number, number[]>, t: number) => median(m.get(t)!);
  const fixed = settings.filter((t) => t > 0);
  const bestD = Math.max(...fixed.map((t) => med(D, t))), bestP = Math.max(...fixed.map((t) => med(P, t)));
  console.log(`\n${n} burner${n === 1 ? "" : "s"} (load ${load}; CPUs busy with processes outside this benchmark: ${f(foreign, 2)}):`);
  console.log("| setting | decode tok/s (min–max) | prefill tok/s | decode: best / this | prefill: best / this |");
  console.log("|---|---|---|---|---|");
  for (const t of settings) {
    const d = D.get(t)!;
    console.log(`| ${label(t)} | ${f(med(D, t))} (${f(Math.min(...d))}–${f(Math.max(...d))}) | ${f(med(P, t))} | ` +
      `${f(bestD / med(D, t), 2)}× | ${f(bestP / med(P, t), 2)}× |`);
  }
  const c = changes(servers.get(0)!.logFile, logAt);
  console.log(`default, governor changes (cap): ${c.governor.length ? c.governor.join(", ") : "none"}`);
  console.log(`default, step tuner's picks: ${c.tuner.length ? c.tuner.join(", ") : "none"}`);
}
burn(0);
for (const s of servers.values()) await s.stop();
