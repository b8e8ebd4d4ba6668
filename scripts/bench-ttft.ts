#!/usr/bin/env bun
/**
 * bun scripts/bench-ttft.ts [--runs 9] [--tokens 16] [--threads N] [--size 28|155] [--engine-dir DIR] [--bin dist/appliance] [--before BIN] [--words]
 *
 * bench-peer's "streamed time to first token" row on its own, with the response scanner's share shown: the
 * compiled appliance as shipped (scanner on), the same binary with APPLIANCE_RESPONSE_SCAN__ACTION=off, with
 * the scanner on but APPLIANCE_RESPONSE_SCAN__INTERNAL_HOSTS empty (no internal-host rule: any run of letters,
 * digits and hyphens may be the first label of "name.corp", so with that rule on a word is held until it ends), and
 * llama-server built from node-llama-cpp's bundled llama.cpp (scripts/peer-build.ts, cached outside the repo),
 * all on the same generated F32 GGUF (--size: 28 M or 155 M params) with the same threads. --engine-dir DIR: the
 * appliance servers run the engine `appliance engine build` installed in DIR (APPLIANCE_ENGINE__USE=built) instead
 * of the embedded libraries; the start log's engine line is checked. Each request is a greedy streamed
 * /v1/completions of --tokens tokens (end tokens banned); each round sends one fresh prompt to every server
 * (rotating order), so all answer the same text (a new prompt per round: no cached prefix). Prints per server the median time from sending to the first non-empty text, the median number of
 * SSE events that carried text (how the answer was split) and the median characters of the first one, and
 * ratios to llama-server, with the 1-minute load average at the start and the end. --words: every request carries
 * bench-peer's WORDS_BIAS (149 word-start tokens raised, end tokens banned), so the answer is word-separated text, as
 * bench-peer's "word-separated output" row. --before BIN: another binary
 * (an earlier build) joins the same rotation, scanner on and off, so a change is measured against the same
 * llama-server runs.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { usableCpus } from "../src/engine/cpu-budget";
import { makeTinyModel } from "../src/engine/tiny-model";
import { NO_END, load1, median, startAppliance, startPeer, wordsPrompt, type Served, cpuLine, SHAPES, WORDS_BIAS } from "./bench-peer-lib";
import { peerBuild } from "./peer-build";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  runs: { type: "string", default: "9" }, tokens: { type: "string", default: "16" }, threads: { type: "string" },
  bin: { type: "string", default: path.resolve(import.meta.dir, "../dist/appliance") },
  size: { type: "string", default: "28" }, "engine-dir": { type: "string" }, before: { type: "string" },
  words: { type: "boolean", default: false },
} });
if (!SHAPES[values.size]) { console.error(`--size: ${values.size} is not one of ${Object.keys(SHAPES).join(", ")}`); process.exit(2); }
const engineDir = values["engine-dir"] && path.resolve(values["engine-dir"]);
const engineEnv: Record<string, string> = engineDir ? { APPLIANCE_ENGINE__USE: "built", APPLIANCE_ENGINE__DIR: engineDir } : { APPLIANCE_ENGINE__USE: "embedded" };
const runs = Number(values.runs), tokens = Number(values.tokens), threads = Number(values.threads ?? usableCpus().cpus);
const bin = path.resolve(values.bin), before = values.before && path.resolve(values.before);
if (!fs.existsSync(bin)) { console.error(`${bin} is missing: run \`bun run build\` first`); process.exit(1); }
if (before && !fs.existsSync(before)) { console.error(`--before: ${before} is missing`); process.exit(1); }
const peer = await peerBuild();
if ("skip" in peer) { console.error(`bench-ttft: no peer to compare with: ${peer.skip}`); process.exit(1); }
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-ttft-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true })); // bench-peer-lib kills what is left running

/** The appliance as shipped, with extra APPLIANCE_* settings in its environment (each its own state dir: they run at once). */
async function appliance(name: string, model: string, env: Record<string, string>, binary = bin): Promise<Served> {
  const own = path.join(dir, name.replace(/\W+/g, "-")), logFile = path.join(dir, `${name.replace(/\W+/g, "-")}.log`);
  fs.mkdirSync(own, { recursive: true });
  const s = await startAppliance(binary, model, own, threads, 1, { name, env: { ...engineEnv, ...env }, logFile });
  const line = fs.readFileSync(logFile, "utf8").split("\n").find((l) => l.includes('"msg":"engine"'));
  const engine = line ? (JSON.parse(line) as { engine: string }).engine : "?";
  if (engine !== engineEnv.APPLIANCE_ENGINE__USE) throw new Error(`${name}: the server runs the ${engine} engine`);
  return s;
}

/** One streamed completion: ms to the first event carrying text, events carrying text, characters of the first. */
async function streamed(s: Served, prompt = wordsPrompt(10)) {
  const body = { model: "bench", prompt, max_tokens: tokens, temperature: 0, logit_bias: values.words ? WORDS_BIAS : NO_END, stream: true };
  const t0 = performance.now();
  const res = await fetch(`${s.base}/v1/completions`, { method: "POST", headers: s.headers, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${s.name}: ${res.status} ${await res.text()}`);
  const dec = new TextDecoder();
  let buf = "", ttft = 0, events = 0, first = 0;
  for await (const bytes of res.body!) {
    buf += dec.decode(bytes, { stream: true });
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.startsWith("data: {")) continue;
      const text = (JSON.parse(line.slice(6)) as { choices?: { text?: string }[] }).choices?.[0]?.text ?? "";
      if (!text) continue;
      if (!events++) { ttft = performance.now() - t0; first = text.length; }
    }
  }
  return { ttft, events, first };
}

const model = path.join(dir, "bench.gguf");
const { params } = await makeTinyModel(model, { ...SHAPES[values.size]!, ctx: 2048 });
const servers = [
  await appliance("appliance (scanner on)", model, {}),
  await appliance("appliance (scanner off)", model, { APPLIANCE_RESPONSE_SCAN__ACTION: "off" }),
  await appliance("appliance (no host rule)", model, { APPLIANCE_RESPONSE_SCAN__INTERNAL_HOSTS: "" }),
  ...(before ? [
    await appliance("before (scanner on)", model, {}, before),
    await appliance("before (scanner off)", model, { APPLIANCE_RESPONSE_SCAN__ACTION: "off" }, before),
  ] : []),
  await startPeer(peer.llamaServer, model, threads, 1),
];
console.log(cpuLine());
console.log(`model ${(params / 1e6).toFixed(1)} M params F32, threads ${threads}, ${tokens} tokens per request, ${runs} runs per server, ` +
  `engine ${engineDir ? `built (${engineDir})` : "embedded"}, binary ${bin}${before ? `, before ${before}` : ""}, bun ${Bun.version}`);
for (const s of servers) { await streamed(s); await streamed(s); } // warm-up
const l0 = load1();
const results = new Map<string, { ttft: number[]; events: number[]; first: number[] }>(servers.map((s) => [s.name, { ttft: [], events: [], first: [] }]));
for (let i = 0; i < runs; i++) {
  const prompt = wordsPrompt(10); // the same fresh prompt for every server in a round: the same answer, paired
  for (let k = 0; k < servers.length; k++) {
    const s = servers[(i + k) % servers.length]!, r = await streamed(s, prompt), into = results.get(s.name)!;
    into.ttft.push(r.ttft); into.events.push(r.events); into.first.push(r.first);
  }
}
const load = `${l0.toFixed(2)}→${load1().toFixed(2)}`;
const peerTtft = median(results.get("llama-server")!.ttft);
for (const [name, r] of results) {
  const t = median(r.ttft);
  console.log(`${name.padEnd(26)} streamed TTFT median ${t.toFixed(1)} ms (${(t / peerTtft).toFixed(2)}× llama-server), ` +
    `text events median ${median(r.events)}, first event median ${median(r.first)} chars; load ${load}`);
}
for (const s of servers) await s.stop();
