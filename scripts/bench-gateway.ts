#!/usr/bin/env bun
/**
 * bun scripts/bench-gateway.ts [--requests N] [--runs N] [--tokens N] [--threads N] [--warmup N]
 *
 * Gateway mode's cost, measured side by side in one run: the same requests sent to an upstream appliance
 * directly and through a second appliance in gateway mode that fronts it (both the compiled binary as shipped:
 * auth, limits, prompt guard, response scanner, audit on; the gateway adds its own on top of the upstream's).
 * Direct and gateway requests are interleaved (order swapped every round), so drift on a shared machine
 * hits both alike.
 *   - added latency: POST /v1/chat/completions, max_tokens 1, on the 0.16 M-parameter tiny model (the upstream
 *     answers in about a millisecond, so what the gateway adds is visible); p50 and p99 of each side, and the
 *     difference. Measured twice: just after start (20 requests per side first), and again after --warmup more
 *     requests per side. Just started, JavaScriptCore is still compiling both servers' request paths: for about the
 *     first thousand requests the gateway's main thread spends ~3× the CPU per request it spends later, and its JIT
 *     threads compete for the same cores. The second row is the steady state a running gateway is in. Each row
 *     also prints the gateway process's CPU time per request (main thread, JIT compiler threads, all threads).
 *   - the same, pinned (where taskset is present and there are 2+ CPUs): the upstream on the last CPU, the gateway
 *     and this client on CPU 0, for both sides alike: what is left when the gateway's work does not compete with
 *     the upstream's threads for a core, as with a gateway on its own host. Other processes on the machine are not
 *     pinned. The unpinned rows are the ones the goal is checked on.
 *   - the gateway's own cost: the same small request to a stub upstream (a Bun.serve in this process that answers
 *     a fixed completion at once) directly and through the gateway, so engine work and the upstream's guards drop
 *     out; p50 and p99 of each side and the difference.
 *   - the gateway's code alone: the stub's model through app.handle() of an in-process gateway (no HTTP in front,
 *     no process hop) against a fetch to the stub (bench-gateway-inproc.ts); what is left of the rows above
 *     beyond it is the HTTP server and the extra process on the way.
 *   - stream throughput: streamed /v1/completions of --tokens tokens (end tokens banned so every run decodes
 *     exactly that many) on a generated ~86 M-parameter F32 model; tokens/s = completion tokens / time from
 *     sending the request to the last byte; median of --runs per side, and the ratio gateway/direct.
 * Everything runs on this one machine: the gateway's CPU competes with the upstream's decode threads, which a
 * gateway on its own host would not.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { makeTinyModel } from "../src/engine/tiny-model";
import { gatewayCodeCost } from "./bench-gateway-inproc";
import { allowedCpus, ownTicks } from "../src/engine/thread-sources";
import { complete, listeningPort, median, spawnLogged, startAppliance, stopServer, waitHealthy, type Served } from "./bench-peer-lib";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  requests: { type: "string", default: "300" }, runs: { type: "string", default: "5" }, tokens: { type: "string", default: "128" },
  threads: { type: "string", default: "1" }, warmup: { type: "string", default: "2000" },
} });
const requests = Number(values.requests), runs = Number(values.runs), tokens = Number(values.tokens), threads = Number(values.threads);
const warmup = Number(values.warmup);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-gw-"));
const servers: Served[] = [];
try {
  const build = await import("./build");
  const bin = await build.build("linux-x64", path.join(dir, "appliance"));
  const tiny = path.join(dir, "tiny.gguf"), bench = path.join(dir, "bench.gguf");
  await makeTinyModel(tiny);
  await makeTinyModel(bench, { layers: 12, embd: 768, ff: 2048, heads: 12, ctx: 2048 });

  const upTiny = await startAppliance(bin, tiny, path.join(dir, "up-tiny"), threads, 1);
  servers.push(upTiny);
  const upBench = await startAppliance(bin, bench, path.join(dir, "up-bench"), threads, 1);
  servers.push(upBench);
  const answer = JSON.stringify({ id: "c", object: "chat.completion", created: 1, model: "stub",
    choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "length" }], usage: { prompt_tokens: 4, completion_tokens: 1, total_tokens: 5 } });
  const stubServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (r) => { await r.arrayBuffer(); return new Response(answer, { headers: { "content-type": "application/json" } }); } });
  const stub: Served = { name: "stub", base: `http://127.0.0.1:${stubServer.port}`, headers: { "content-type": "application/json" }, proc: undefined as never,
    stop: async () => { stubServer.stop(true); } };
  servers.push(stub);
  const gw = await startGateway(bin, path.join(dir, "gateway"), [
    { url: `${upTiny.base}/v1`, apiKey: keyOf(upTiny), models: ["tiny"] },
    { url: `${upBench.base}/v1`, apiKey: keyOf(upBench), models: ["bench"] },
    { url: `${stub.base}/v1`, models: ["stub"] },
  ]);
  servers.push(gw);

  console.log(`bench-gateway: ${os.cpus().length} CPUs, upstream threads ${threads}, Bun ${Bun.version}; direct = upstream appliance, gateway = appliance in gateway mode in front of it`);

  // 1. Added latency on small requests.
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
  const f = (n: number) => n.toFixed(2);
  const pair = async (title: string, upstream: Served, model: string, warm = 20) => {
    const small = (s: Served) => chatSmall(s, model);
    for (let i = 0; i < warm; i++) { await small(upstream); await small(gw); } // warm-up: connections, JIT
    const direct: number[] = [], via: number[] = [];
    const cpu0 = threadCpu(gw.proc.pid);
    for (let i = 0; i < requests; i++) {
      if (i % 2) { direct.push(await small(upstream)); via.push(await small(gw)); } else { via.push(await small(gw)); direct.push(await small(upstream)); }
    }
    const cpu = threadCpu(gw.proc.pid), per = (k: keyof typeof cpu) => f((cpu[k] - cpu0[k]) / requests);
    console.log(`\n${title}, ${requests} per side, ms from send to last byte:`);
    console.log(`  direct   p50 ${f(pct(direct, 0.5))}  p99 ${f(pct(direct, 0.99))}`);
    console.log(`  gateway  p50 ${f(pct(via, 0.5))}  p99 ${f(pct(via, 0.99))}`);
    console.log(`  added by the gateway: p50 ${f(pct(via, 0.5) - pct(direct, 0.5))} ms, p99 ${f(pct(via, 0.99) - pct(direct, 0.99))} ms (goal: p50 < 2 ms)`);
    console.log(`  gateway process CPU per request: main thread ${per("main")} ms, JIT compiler threads ${per("jit")} ms, all threads ${per("all")} ms`);
  };
  await pair("small requests to the upstream appliance (chat, max_tokens 1, tiny model), processes just started", upTiny, "tiny");
  await pair(`the same after ${warmup} more requests per side (steady state)`, upTiny, "tiny", warmup);
  await pinned(() => pair("the same, pinned: upstream on its own CPU, gateway and client on another", upTiny, "tiny"), upTiny, gw);
  await pair("the gateway's own cost (the same chat to a stub upstream answering at once)", stub, "stub");
  {
    const { direct, via } = await gatewayCodeCost(stub.base, requests, warmup);
    console.log(`\nthe gateway's code alone (in process: app.handle() of a gateway for the stub's model vs a fetch to the stub), ${requests} per side after ${warmup}:`);
    console.log(`  direct   p50 ${f(pct(direct, 0.5))}  p99 ${f(pct(direct, 0.99))}`);
    console.log(`  gateway  p50 ${f(pct(via, 0.5))}  p99 ${f(pct(via, 0.99))}`);
    console.log(`  added by the gateway's request path: p50 ${f(pct(via, 0.5) - pct(direct, 0.5))} ms (the rest of the rows above is HTTP and process hops)`);
  }

  // 2. Stream throughput.
  const stream = (s: Served) => complete({ ...s }, "once upon a time", tokens, true);
  await stream(upBench); await stream(gw); // warm-up
  const tpsDirect: number[] = [], tpsVia: number[] = [];
  const tps = (c: { completionTokens: number; ms: number }) => {
    if (c.completionTokens !== tokens) throw new Error(`a run decoded ${c.completionTokens} tokens, not ${tokens}`);
    return c.completionTokens / (c.ms / 1000);
  };
  for (let i = 0; i < runs; i++) {
    if (i % 2) { tpsDirect.push(tps(await stream(upBench))); tpsVia.push(tps(await stream(gw))); }
    else { tpsVia.push(tps(await stream(gw))); tpsDirect.push(tps(await stream(upBench))); }
  }
  console.log(`\nstreams (${tokens} tokens, ~86 M-parameter model), ${runs} runs per side, tokens/s = completion tokens / (send → last byte):`);
  console.log(`  direct   median ${median(tpsDirect).toFixed(1)}  (runs: ${tpsDirect.map((x) => x.toFixed(1)).join(", ")})`);
  console.log(`  gateway  median ${median(tpsVia).toFixed(1)}  (runs: ${tpsVia.map((x) => x.toFixed(1)).join(", ")})`);
  console.log(`  ratio gateway/direct: ${(median(tpsVia) / median(tpsDirect)).toFixed(3)} (goal >= 0.95)`);
} finally {
  for (const s of servers.reverse()) await s.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * CPU time (user + system, ms) a process has used so far: its main thread, JavaScriptCore's compiler threads
 * (JITWorker, JSCWarmUp) and all threads together, from /proc (10 ms ticks: fine over a few hundred requests).
 */
function threadCpu(pid: number): { main: number; jit: number; all: number } {
  const out = { main: 0, jit: 0, all: 0 };
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try { stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8"); } catch { continue; } // the thread ended
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const ms = (ownTicks(stat) ?? 0) * (1000 / 100); // utime + stime; USER_HZ is 100 on Linux
    out.all += ms;
    if (tid === String(pid)) out.main += ms;
    else if (/^(JITWorker|JSCWarmUp)/.test(name)) out.jit += ms;
  }
  return out;
}

/**
 * Runs `row` with the upstream on the last CPU and the gateway and this process on CPU 0 (every thread: taskset -a),
 * then gives each its CPUs back; says so and skips the row where taskset is missing or there is only one CPU.
 */
async function pinned(row: () => Promise<void>, upstream: Served, gateway: Served) {
  const cpus = os.cpus().length;
  const allowed = allowedCpus()?.join(",") ?? `0-${cpus - 1}`;
  const pin = (list: string, pid: number) => Bun.spawnSync(["taskset", "-a", "-p", "-c", list, String(pid)], { stdout: "ignore", stderr: "pipe" });
  if (cpus < 2 || !Bun.which("taskset")) return console.log(`\n(pinned row skipped: ${cpus < 2 ? "one CPU" : "no taskset"})`);
  const pids = [upstream.proc.pid, gateway.proc.pid, process.pid];
  try {
    const r = [pin(String(cpus - 1), pids[0]!), pin("0", pids[1]!), pin("0", pids[2]!)].find((x) => x.exitCode !== 0);
    if (r) return console.log(`\n(pinned row skipped: taskset: ${r.stderr.toString().trim()})`);
    await row();
  } finally {
    for (const pid of pids) pin(allowed, pid);
  }
}

/** One chat request with max_tokens 1; ms from send to last byte. */
async function chatSmall(s: Served, model: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${s.base}/v1/chat/completions`, { method: "POST", headers: s.headers,
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Say hello." }], max_tokens: 1, temperature: 0 }) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`${s.name} chat: ${res.status}`);
  return performance.now() - t0;
}

function keyOf(s: Served): string {
  return s.headers.authorization!.replace(/^Bearer /, "");
}

/** The binary in gateway mode: no local model, the upstreams in its config file, a key without limits. */
async function startGateway(bin: string, home: string, upstreams: unknown[]): Promise<Served> {
  fs.mkdirSync(home, { recursive: true });
  const stateDir = path.join(home, "state");
  const env = { PATH: "/usr/bin:/bin", HOME: home };
  const r = Bun.spawnSync([bin, "keys", "create", "--name", "bench", "--scopes", "chat,completions,models", "--rpm", "0", "--tpm", "0", "--max-concurrent", "0",
    "--state-dir", stateDir], { env });
  if (r.exitCode !== 0) throw new Error(`keys create: ${r.stderr.toString()}`);
  const key = r.stdout.toString().trim();
  const config = path.join(home, "config.json"), logFile = path.join(home, "serve.log");
  fs.writeFileSync(config, JSON.stringify({ stateDir, port: 0, upstreams }));
  const { proc, t0 } = spawnLogged([bin, "serve", "--config", config], env, logFile);
  const base = `http://127.0.0.1:${await listeningPort(logFile, proc)}`;
  await waitHealthy(base, t0, proc);
  return {
    name: "gateway", base, proc, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    stop: () => stopServer(proc),
  };
}
