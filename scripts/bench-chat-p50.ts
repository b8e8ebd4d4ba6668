#!/usr/bin/env bun
/**
 * bun scripts/bench-chat-p50.ts [--size 28|155] [--runs 31] [--threads N] [--bin dist/appliance] [--before BIN]... [--env K=V,…] [--before-env K=V,…] [--system N]
 *
 * bench-peer's "1-token chat p50" row on its own, quicker and with more requests: one /v1/chat/completions with a
 * 4-word user message never sent before (freshWords) and max_tokens 1 (ms to the last byte), sent to the compiled
 * appliance as shipped (auth, guards, scanner, audit on; --parallel 1) and to llama-server built from
 * node-llama-cpp's bundled llama.cpp (scripts/peer-build.ts, cached outside the repo), on the same generated F32
 * GGUF with the same threads. Requests rotate over the servers one at a time (each round in another order), so
 * load changes hit all of them alike. --before BIN (repeatable): another binary (an earlier build) joins the rotation.
 * --system N: every request starts with the same system message of N words (a shared system prompt: a server that
 * reuses an evaluated prompt start evaluates it once; llama-server and the appliance both do, within one key).
 * --before-env: the same for every --before server (both: two binaries on a built engine in one rotation).
 * --env: extra environment for the --bin server only (e.g. APPLIANCE_ENGINE__DIR=DIR,APPLIANCE_ENGINE__USE=built for an engine
 * `appliance engine build` made, with `--before dist/appliance` as the embedded engine in the same rotation).
 * Prints per server the median, p10 and p90 (ms) and the median's ratio to llama-server's, with the 1-minute load
 * average at the start and the end. The appliance started first was the slowest in 4 of 4 runs here, whichever
 * binary it was (a position bias, not explained): compare binaries over runs with the order swapped.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { usableCpus } from "../src/engine/cpu-budget";
import { makeTinyModel } from "../src/engine/tiny-model";
import { load1, median, startAppliance, startPeer, type Served, cpuLine, envOf, SHAPES } from "./bench-peer-lib";
import { peerBuild } from "./peer-build";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  size: { type: "string", default: "28" }, runs: { type: "string", default: "31" }, threads: { type: "string" },
  bin: { type: "string", default: path.resolve(import.meta.dir, "../dist/appliance") }, before: { type: "string", multiple: true },
  env: { type: "string", default: "" }, "before-env": { type: "string", default: "" }, system: { type: "string", default: "0" },
} });
const shape = SHAPES[values.size];
if (!shape) { console.error(`--size: ${values.size} is not one of ${Object.keys(SHAPES).join(", ")}`); process.exit(2); }
const runs = Number(values.runs), threads = Number(values.threads ?? usableCpus().cpus);
const bins = [["appliance", path.resolve(values.bin)], ...(values.before ?? []).map((b, i) => [`before${i ? i + 1 : ""}`, path.resolve(b)])] as const;
for (const [, b] of bins) if (!fs.existsSync(b)) { console.error(`${b} is missing: run \`bun run build\` first`); process.exit(1); }
const peer = await peerBuild();
if ("skip" in peer) { console.error(`bench-chat-p50: no peer to compare with: ${peer.skip}`); process.exit(1); }
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-p50-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true })); // bench-peer-lib kills what is left running

const VOCAB = "the of and to in is you that it he was for on are as with his they at be this have from or one had by".split(" ");
let calls = 0;
/**
 * Four words no earlier request had (the call count's digits in base 27, one word each). bench-peer-lib's
 * wordsPrompt has only 27 different 4-word prompts, and llama-server keeps earlier prompts' state in RAM
 * (--cache-ram, 8 GiB by default), so it answered repeats without evaluating them.
 */
function freshWords(): string {
  let n = calls++;
  return Array.from({ length: 4 }, () => { const w = VOCAB[n % VOCAB.length]!; n = Math.floor(n / VOCAB.length); return w; }).join(" ");
}

const systemTurn = Number(values.system) > 0
  ? [{ role: "system", content: Array.from({ length: Number(values.system) }, (_, i) => VOCAB[(i * 5) % VOCAB.length]!).join(" ") }] : [];

/** bench-peer-lib's chatOne with a fresh prompt (after the --system turn): ms to the last byte of a 1-token chat. */
async function chatOne(s: Served): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${s.base}/v1/chat/completions`, { method: "POST", headers: s.headers,
    body: JSON.stringify({ model: "bench", messages: [...systemTurn, { role: "user", content: freshWords() }], max_tokens: 1, temperature: 0 }) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`${s.name} chat: ${res.status}`);
  return performance.now() - t0;
}

const model = path.join(dir, "bench.gguf");
const { params } = await makeTinyModel(model, { ...shape, ctx: 2048 });
const servers: Served[] = [];
const env = envOf(values.env), beforeEnv = envOf(values["before-env"]);
for (const [name, bin] of bins) {
  const own = path.join(dir, name);
  fs.mkdirSync(own);
  servers.push(await startAppliance(bin, model, own, threads, 1, { name, env: name === "appliance" ? env : beforeEnv }));
}
servers.push(await startPeer(peer.llamaServer, model, threads, 1));
console.log(cpuLine());
console.log(`model ${(params / 1e6).toFixed(1)} M params F32, threads ${threads}, ${runs} requests per server, ` +
  `${bins.map(([n, b]) => `${n} ${b}`).join(", ")}${values.env ? ` (appliance with ${values.env})` : ""}${values["before-env"] ? ` (before with ${values["before-env"]})` : ""}${systemTurn.length ? `, a ${values.system}-word system turn in every request` : ""}, bun ${Bun.version}`);
for (const s of servers) for (let i = 0; i < 5; i++) await chatOne(s); // warm-up
const l0 = load1();
const times = new Map<string, number[]>(servers.map((s) => [s.name, []]));
for (let i = 0; i < runs; i++) {
  for (let k = 0; k < servers.length; k++) {
    const s = servers[(i + k) % servers.length]!;
    times.get(s.name)!.push(await chatOne(s));
  }
}
const load = `${l0.toFixed(2)}→${load1().toFixed(2)}`;
const at = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * q)]!;
const peerMedian = median(times.get("llama-server")!);
for (const [name, xs] of times) {
  const m = median(xs);
  console.log(`${name.padEnd(13)} 1-token chat p50 ${m.toFixed(1)} ms (${(m / peerMedian).toFixed(2)}× llama-server), ` +
    `p10 ${at(xs, 0.1).toFixed(1)}, p90 ${at(xs, 0.9).toFixed(1)}; load ${load}`);
}
for (const s of servers) await s.stop();
