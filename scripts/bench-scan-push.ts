#!/usr/bin/env bun
/**
 * bun scripts/bench-scan-push.ts [--size 28|155] [--tokens 256] [--streams 8] [--rounds 20] [--scan on|no-host] [--save F | --load F] [--curve] [--cold MB]
 *
 * The response scanner's cost per push, as a stream feeds it one token's text at a time (issue 11: the scanner's
 * per-token cost on the request path). The token pieces are real: --streams greedy completions of the generated
 * F32 model (the one bench-steps and bench-ttft use), their text as the engine hands it to the route (onText), plus
 * the same number of pieces of English prose cut into 1–6-character tokens. Each piece list is fed to a fresh
 * filter (burstChars 0: every push scanned, as at generation speed) --rounds times; prints the mean µs per push and
 * per character, the held characters after a push (mean / max), and for the model's pieces how many characters of
 * pushed text were released by the push right after it (the first text's wait, in pushes). A third row feeds a
 * JWT header of 1,500 characters being written, 3 per push: held whole, so there a push's cost is what it costs
 * to look at the held tail again. Single-threaded, no
 * HTTP: run it under the CPU lock; compare two checkouts with the same options (--save F writes the model's pieces
 * as JSON, --load F reads them instead of generating: the same pieces for both). --curve first prints the mean µs per
 * push over the process's first pushes of the model's pieces (pushes 0-256, 256-1k, 1k-4k, 4k-16k, 16k-64k): what a
 * freshly started server pays before the JIT has optimised the scanner (bench-steps measures such a process).
 * --cold MB: before every push, untimed, the script reads MB megabytes of a buffer of its own (one float per 64-byte
 * line), as a decode step streams the model's weights through the caches between two pushes in the server (a 28 M F32
 * model: 112 MB); each push is then timed on its own, so the figure is what a push costs with caches that step emptied.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load";
import { LlamaEngine } from "../src/engine/llama";
import { makeTinyModel } from "../src/engine/tiny-model";
import { createScanner } from "../src/guards/response-scan";
import { silentLogger } from "../src/log/logger";
import { NO_END, wordsPrompt, SHAPES } from "./bench-peer-lib";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: {
  size: { type: "string", default: "28" }, tokens: { type: "string", default: "256" }, streams: { type: "string", default: "8" },
  rounds: { type: "string", default: "20" }, scan: { type: "string", default: "on" }, save: { type: "string" }, load: { type: "string" },
  curve: { type: "boolean", default: false }, cold: { type: "string", default: "0" },
} });
if (!SHAPES[values.size]) throw new Error(`--size: one of ${Object.keys(SHAPES).join(", ")}`);
const scan = { on: {}, "no-host": { internalHosts: [] } }[values.scan];
if (!scan) throw new Error("--scan: on or no-host");
async function generate(): Promise<string[][]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-scan-push-"));
  try {
    const model = path.join(dir, "m.gguf");
    await makeTinyModel(model, { ...SHAPES[values.size]!, ctx: 2048 });
    const engine = await LlamaEngine.create({ models: [{ id: "bench", path: model }], threads: 1, ctxSize: 2048, parallel: 1, maxQueue: 4, gpu: false, log: silentLogger() });
    const all: string[][] = [];
    for (let i = 0; i < Number(values.streams); i++) {
      const pieces: string[] = [];
      await engine.complete({
        model: "bench", prompt: wordsPrompt(10), signal: new AbortController().signal, onText: (t) => { if (t) pieces.push(t); },
        sampling: { maxTokens: Number(values.tokens), temperature: 0, logitBias: new Map(Object.entries(NO_END).map(([k, v]) => [Number(k), v])) },
      });
      all.push(pieces);
    }
    await engine.dispose();
    return all;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
const modelPieces: string[][] = values.load ? JSON.parse(fs.readFileSync(values.load, "utf8")) : await generate();
if (values.save) fs.writeFileSync(values.save, JSON.stringify(modelPieces));

// Prose cut like a real tokenizer's output: short pieces, a space often leading a word.
let seed = 11;
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
const para = "The quick brown fox jumps over the lazy dog while the server streams tokens to its clients, and the scanner keeps up. ";
const prosePieces = modelPieces.map((m) => {
  const want = m.length, out: string[] = [];
  let text = para.repeat(Math.ceil((want * 6) / para.length) + 1), at = 0;
  while (out.length < want) { const n = 1 + Math.floor(rnd() * 6); out.push(text.slice(at, at + n)); at += n; }
  text = "";
  return out;
});

// A held tail that grows: a JWT's header being written (an x5c chain makes it kilobytes), 3 characters per push.
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const header = "eyJ" + Array.from({ length: 1500 }, () => B64URL[Math.floor(rnd() * 64)]).join("");
const longPieces = [Array.from({ length: Math.ceil(header.length / 3) }, (_, i) => header.slice(i * 3, i * 3 + 3))];

const scanner = createScanner(parseConfig({ responseScan: { burstChars: 0, ...scan } }).responseScan);
// --cold: what a decode step does to the caches between two pushes, done before each push and left out of its time.
const coldFloats = Number(values.cold) * 262144, weights = new Float32Array(coldFloats);
let coldSink = 0;
const emptyCaches = () => { for (let i = 0; i < coldFloats; i += 16) coldSink += weights[i]!; };
function measure(streams: string[][]) {
  let pushes = 0, chars = 0, heldSum = 0, heldMax = 0, ms = 0, firstWait = 0;
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const pieces of streams) {
      const f = scanner.filter();
      let released = false;
      let t = performance.now();
      for (let i = 0; i < pieces.length; i++) {
        if (coldFloats) { ms += performance.now() - t; emptyCaches(); t = performance.now(); }
        const out = f.push(pieces[i]!);
        if (r === 0) {
          heldSum += f.pending; heldMax = Math.max(heldMax, f.pending);
          if (!released && out) { released = true; firstWait += i; }
        }
      }
      f.end();
      ms += performance.now() - t;
      if (r === 0 && !released) firstWait += pieces.length; // nothing before the end
      if (r === 0) { pushes += pieces.length; chars += pieces.reduce((a, p) => a + p.length, 0); }
    }
  }
  const rounds = Number(values.rounds);
  return { usPush: (ms * 1000) / (pushes * rounds), nsChar: (ms * 1e6) / (chars * rounds), held: heldSum / pushes, heldMax, firstWait: firstWait / streams.length, chars: chars / pushes };
}
const f = (x: number, d = 1) => x.toFixed(d);
if (values.curve) {
  const ends = [256, 1024, 4096, 16384, 65536], cells: string[] = [];
  let n = 0, last = 0, t = performance.now();
  all: for (;;) {
    for (const pieces of modelPieces) {
      const fl = scanner.filter();
      for (const p of pieces) {
        fl.push(p);
        if (++n === ends[0]) { const now = performance.now(); cells.push(`${last}-${n}: ${f(((now - t) * 1000) / (n - last))}`); t = now; last = n; ends.shift(); if (!ends.length) break all; }
      }
      fl.end();
    }
  }
  console.log(`first pushes of this process, µs per push: ${cells.join("; ")}`);
}
measure(modelPieces); measure(prosePieces); // warm-up
console.log(`${values.load ? `pieces of ${values.load}` : `model ${values.size} M`}, ${modelPieces.length} streams × ${values.tokens} tokens, ${values.rounds} rounds, scanner ${values.scan}${coldFloats ? `, ${values.cold} MB read before each push (untimed)` : ""}; load ${f(os.loadavg()[0]!, 2)}`);
for (const [name, streams] of [["model tokens", modelPieces], ["prose pieces", prosePieces], ["JWT header", longPieces]] as const) {
  const m = measure(streams as string[][]);
  console.log(`${name.padEnd(13)} ${f(m.usPush)} µs per push (${f(m.nsChar, 0)} ns per char, ${f(m.chars, 2)} chars per push); held after a push mean ${f(m.held)} max ${m.heldMax} chars; ` +
    `first text released at push ${f(m.firstWait, 1)} (mean; 0 = the first)`);
}
console.log(`sample of the model's text: ${JSON.stringify(modelPieces[0]!.slice(0, 24).join(""))}`);
