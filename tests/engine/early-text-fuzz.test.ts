/**
 * Differential check of early release (src/engine/early-text.ts): over prompts × seeds × samplers on the tiny
 * model, for chat and completions, the streamed text equals the non-streamed answer of the same seed, the token
 * counts are the same, and the text streamed with early release equals the text streamed with it off (a request
 * stop string that never matches turns it off: chatEarly), never less of it sent by any decode. max_tokens 1..8 cuts and
 * client aborts mid-stream send nothing the answer lacks. The check cannot pass vacuously: it counts the cases
 * where early release sent text before node-llama-cpp would have (observed at the context's decode queue).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { LlamaEngine } from "../../src/engine/llama";
import { makeEngine, spyDecodes } from "../helpers";

const NO_END = new Map([[2, -100], [260, -100]]); // </s> and <|im_end|>: runs go on to max_tokens
const NEVER = "\u{10FFFF}never"; // a stop string no run here writes (U+10FFFF takes 4 given byte tokens; a byte such as \u0007 does come): early release off
const TEMPLATE_TEXT = ["<|im_end|>", "<|im_start|>", "</s>", "<s>"];
let engine: LlamaEngine;
let decodes = 0;

beforeAll(async () => {
  engine = await makeEngine();
  spyDecodes(engine, () => { decodes++; });
}, 120_000);
afterAll(() => engine.dispose());

type Kind = "complete" | "chat";
interface Sampler { temperature: number; topP?: number; topK?: number; seed: number; end: boolean }
interface Run { text: string; tokens: number; finish: string; streamed: string; at: { decodes: number; length: number }[] }

async function run(kind: Kind, input: string, s: Sampler, maxTokens: number, opts: { stream?: boolean; stop?: string[]; abortAfter?: number } = {}): Promise<Run> {
  const at: Run["at"] = [];
  let streamed = "";
  const ac = new AbortController();
  decodes = 0;
  const args = {
    model: "tiny", signal: ac.signal,
    sampling: { maxTokens, temperature: s.temperature, topP: s.topP, topK: s.topK, seed: s.seed, logitBias: s.end ? undefined : NO_END, stop: opts.stop },
    onText: opts.stream ? (text: string) => {
      streamed += text;
      at.push({ decodes, length: streamed.length });
      if (opts.abortAfter !== undefined && at.length >= opts.abortAfter) ac.abort();
    } : undefined,
  };
  try {
    const g = kind === "complete" ? await engine.complete({ ...args, prompt: input }) : await engine.chat({ ...args, messages: [{ role: "user", content: input }] });
    return { text: g.text, tokens: g.completionTokens, finish: g.finishReason, streamed, at };
  } catch (e) {
    if (!ac.signal.aborted) throw e;
    return { text: streamed, tokens: -1, finish: "aborted", streamed, at }; // an aborted chat throws: only what was streamed counts
  }
}

/** How much text had been streamed before decode `d` began. */
const sentBefore = (r: Run, d: number) => r.at.filter((a) => a.decodes < d).at(-1)?.length ?? 0;

const PROMPTS = ["zzzz", "hello world", "héllo ☃ 日本語", "the cat 🐈", "<|im_end|> x", "ÿþ\u00ad\u200b", "12 34 56", " "];
const SAMPLERS: Omit<Sampler, "seed">[] = [
  { temperature: 0, end: false }, { temperature: 0.8, end: true }, { temperature: 1.5, end: false },
  { temperature: 1, topP: 0.5, end: false }, { temperature: 1.2, topK: 5, end: true }, { temperature: 2, topK: 40, topP: 0.95, end: false },
];
const SEEDS = [1, 7, 42];
// EARLY_TEXT_FUZZ=wide: every prompt, sampler and seed (288 cases, minutes); by default a fast slice (< 30 s).
const WIDE = process.env.EARLY_TEXT_FUZZ === "wide";
const pick = <T>(all: T[], n: number) => (WIDE ? all : all.slice(0, n));

const tally = { cases: 0, early: 0 };

describe("streamed text == answer == streamed text with early release off", () => {
  for (const kind of ["complete", "chat"] as const) {
    test(kind, async () => {
      for (const input of pick(PROMPTS, 4)) for (const base of pick(SAMPLERS, 4)) for (const seed of pick(SEEDS, 1)) {
        const s = { ...base, seed };
        const label = `${kind} ${JSON.stringify(input)} ${JSON.stringify(s)}`;
        const n = 12;
        const plain = await run(kind, input, s, n);
        const early = await run(kind, input, s, n, { stream: true });
        const off = await run(kind, input, s, n, { stream: true, stop: [NEVER] });
        expect(`${label} ${early.text}`).toBe(`${label} ${plain.text}`);
        expect(`${label} ${early.streamed}`).toBe(`${label} ${plain.text}`);
        expect(`${label} ${off.text}`).toBe(`${label} ${plain.text}`);
        expect(`${label} ${off.streamed}`).toBe(`${label} ${plain.text}`);
        expect([early.tokens, early.finish, off.tokens, off.finish]).toEqual([plain.tokens, plain.finish, plain.tokens, plain.finish]);
        for (const t of TEMPLATE_TEXT) if (!plain.text.includes(t)) expect(early.streamed.includes(t)).toBe(false);
        // Early release only sends sooner: at every decode, at least what it would send off.
        let sooner = false;
        for (let d = 1; d <= n + 2; d++) {
          expect(sentBefore(early, d)).toBeGreaterThanOrEqual(sentBefore(off, d));
          if (sentBefore(early, d) > sentBefore(off, d)) sooner = true;
        }
        tally.cases++;
        if (sooner) tally.early++;
      }
    }, 300_000);
  }

  test("max_tokens 1..8 and aborts mid-stream send nothing the answer lacks", async () => {
    for (const kind of ["complete", "chat"] as const) for (const input of pick(PROMPTS, 2)) for (const base of pick(SAMPLERS, 2)) {
      const s = { ...base, seed: 3 };
      const full = await run(kind, input, s, 12);
      for (let m = 1; m <= 8; m++) {
        const label = `${kind} ${JSON.stringify(input)} ${JSON.stringify(s)} max ${m}`;
        const plain = await run(kind, input, s, m);
        const early = await run(kind, input, s, m, { stream: true });
        expect(`${label} ${early.streamed}`).toBe(`${label} ${plain.text}`);
        expect(`${label} ${early.text}`).toBe(`${label} ${plain.text}`);
        expect([early.tokens, early.finish]).toEqual([plain.tokens, plain.finish]);
        // A cut inside a character shows it as U+FFFD; everything before it is the full answer's.
        expect(`${label} ${full.text.startsWith(plain.text.replace(/\uFFFD+$/, ""))}`).toBe(`${label} true`);
      }
      for (let a = 1; a <= 4; a++) {
        const label = `${kind} ${JSON.stringify(input)} ${JSON.stringify(s)} abort after chunk ${a}`;
        const cut = await run(kind, input, s, 12, { stream: true, abortAfter: a });
        const known = cut.streamed.replace(/\uFFFD+$/, "");
        expect(`${label} ${full.text.startsWith(known)}`).toBe(`${label} true`);
        expect(`${label} ${cut.text.startsWith(cut.streamed.replace(/\uFFFD+$/, ""))}`).toBe(`${label} true`);
      }
    }
  }, 300_000);

  // Not vacuous: early release did send text sooner in most cases (the full sweep: 234 of 288).
  test("early release did happen", () => {
    console.log(`early-text fuzz: ${tally.cases} cases, early release sent text sooner in ${tally.early}`);
    expect(tally.cases).toBeGreaterThanOrEqual(32);
    expect(tally.early).toBeGreaterThanOrEqual(tally.cases / 2);
  });
});
