/**
 * Batched concurrency (issue 11): concurrent greedy streams give exactly what they give one at a time, and they
 * share decode steps. Steps are counted at llama.cpp's batch (node-llama-cpp's native context, spied through a
 * Proxy; nothing of ours is replaced): before the fix 4 streams of N tokens took ~1.3 N steps of 3 tokens each,
 * one sequence always a step behind.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { LlamaEngine } from "../../src/engine/llama";
import { makeApp, req } from "../helpers";

const NO_END = { "2": -100, "260": -100 }; // </s>, <|im_end|>: every stream runs to max_tokens
const PROMPTS = ["Once upon a time", "hello world", "the json key", "x y z"];
let handle: (r: Request) => Promise<Response>, key = "", engine: LlamaEngine, stop = async () => {};

beforeAll(async () => {
  const t = await makeApp({ config: { parallel: 4, rateLimit: { rpm: 0, tpm: 0, maxConcurrent: 0 } } });
  // Requests go to the app without a port: a burst's requests reach the server in one tick, as they do when a
  // client's connections are already open. (Through fetch, each on a new connection, they once came > 2 ms apart
  // on a loaded box, so the first prompt was rightly evaluated alone: a flaky test, not the burst it means.)
  handle = (r) => t.app.handle(r);
  ({ key, engine } = t);
  stop = () => t.engine.dispose();
}, 120_000);
afterAll(() => stop());

async function stream(prompt: string, maxTokens: number): Promise<{ text: string; tokens: number; promptTokens: number; cachedTokens: number }> {
  const r = await handle(req("/v1/completions", { key,
    json: { model: "tiny", prompt, max_tokens: maxTokens, temperature: 0, logit_bias: NO_END, stream: true, stream_options: { include_usage: true } } }));
  expect(r.status).toBe(200);
  const events = (await r.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)) as
    { choices: { text: string }[]; usage?: { completion_tokens: number; prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } });
  const usage = events.find((e) => e.usage)!.usage!;
  return { text: events.flatMap((e) => e.choices.map((c) => c.text)).join(""), tokens: usage.completion_tokens, promptTokens: usage.prompt_tokens,
    cachedTokens: usage.prompt_tokens_details.cached_tokens };
}

/**
 * Counts llama_decode batches (and their sizes) on the model's context while `fn` runs; `done()` is how many of
 * them have finished so far (read from within `fn`).
 */
async function countSteps<T>(fn: (done: () => number) => Promise<T>): Promise<{ result: T; sizes: number[] }> {
  const context = (engine as unknown as { loaded: Map<string, { context: { _ctx: Record<string, unknown> } }> }).loaded.get("tiny")!.context;
  const native = context._ctx, sizes: number[] = [];
  let finished = 0;
  context._ctx = new Proxy(native, {
    get(t, k) {
      const v = t[k as string];
      if (k === "initBatch") return (n: number) => { sizes.push(n); return (v as (n: number) => unknown).call(t, n); };
      if (k === "decodeBatch") return async () => { try { await (v as () => Promise<void>).call(t); } finally { finished++; } };
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  try { return { result: await fn(() => finished), sizes }; } finally { context._ctx = native; }
}

describe("4 concurrent greedy streams", () => {
  test("give the same text and usage as the same 4 requests one at a time", async () => {
    const sequential = [];
    for (const p of PROMPTS) sequential.push(await stream(p, 48));
    const concurrent = await Promise.all(PROMPTS.map((p) => stream(p, 48)));
    // How much of each prompt an earlier request had left evaluated differs (sequence-pool.ts); nothing else may.
    const uncached = ({ cachedTokens: _, ...r }: Awaited<ReturnType<typeof stream>>) => r;
    expect(concurrent.map(uncached)).toEqual(sequential.map(uncached));
    expect(new Set(sequential.map((s) => s.text)).size).toBe(4); // four different answers, not one repeated
  }, 120_000);

  test("share decode steps: one step per generated token, all 4 sequences in it", async () => {
    await stream("warm up", 4);
    const n = 48;
    const { result, sizes } = await countSteps(() => Promise.all(PROMPTS.map((p) => stream(p, n))));
    for (const r of result) expect(r.tokens === n || r.tokens === n + 1).toBe(true); // +1: a character finished (token-tally.ts)
    const generationSteps = sizes.filter((s) => s <= 4); // prompt steps carry several tokens per sequence
    console.log(`decode steps for 4 × ${n} tokens: ${generationSteps.length}, sizes ${JSON.stringify(Object.groupBy(generationSteps, (s) => s))
      .replace(/\[[\d,]+\]/g, (m) => String(JSON.parse(m).length))}`);
    // Ideal: n - 1 steps of 4 (each stream's last token is sampled, never decoded) plus a few while streams start.
    expect(generationSteps.length).toBeLessThanOrEqual(n + 4);
    expect(generationSteps.filter((s) => s === 4).length).toBeGreaterThanOrEqual(n - 8);
  }, 120_000);
});

describe("a burst of 4 streams", () => {
  // Before burst gathering (engine/arrivals.ts) the first request's prompt went into a step of its own while the
  // others were still in the guards, and they waited for it: steps of 14 then 25 tokens (measured while each prompt
  // still carried two BOS tokens, see prompt-tokens.test.ts; 13 then 21 with one), not one step of all of them.
  test("has its prompts evaluated in one decode step", async () => {
    await stream("warm up", 2);
    const { result, sizes } = await countSteps(() => Promise.all(PROMPTS.map((p) => stream(p, 4))));
    // What each prompt did not find evaluated already (a start an earlier request left: sequence-pool.ts).
    const promptTokens = result.reduce((n, r) => n + r.promptTokens - r.cachedTokens, 0);
    console.log(`burst of 4: prompts ${result.map((r) => `${r.promptTokens} (${r.cachedTokens} cached)`).join("+")} tokens, first steps ${sizes.slice(0, 4).join(", ")}`);
    // Every prompt in the first step, then generation steps of one token per stream.
    expect(sizes[0]).toBe(promptTokens);
    expect(sizes[1]).toBeLessThanOrEqual(4);
  }, 120_000);

  // Issue 11's "the 4th request of a burst gets its first token within 1.2x of the 1st", at the engine: each
  // stream's first token is released right after the one step that evaluated all four prompts, before any other
  // step ends. (Before burst gathering the first request's first token came from a step of its own, the others'
  // a step or more later.) Whether the text then reaches the client at once is the response scanner's hold-back;
  // these prompts' first tokens are whole characters (node-llama-cpp holds a token ending inside a UTF-8 character
  // until a later one completes it; two of PROMPTS start that way on this model, these four do not).
  const WHOLE = ["hello world", "x y z", "the cat sat", "a b c"];
  test("has every stream's first token released after the same step, the one with all the prompts", async () => {
    await stream("warm up", 2);
    const firsts: number[] = [];
    const complete = engine.complete;
    engine.complete = (call) => {
      let seen = false;
      return complete.call(engine, { ...call, onStage: (st) => {
        if (st === "first-token" && !seen) { seen = true; firsts.push(done()); }
        call.onStage?.(st);
      } });
    };
    let done = () => 0;
    try {
      const { sizes } = await countSteps((d) => { done = d; return Promise.all(WHOLE.map((p) => stream(p, 4))); });
      console.log(`burst of 4: steps finished when each stream's first token was released: ${firsts.join(", ")}; step sizes ${sizes.slice(0, 4).join(", ")}`);
      expect(firsts).toEqual([1, 1, 1, 1]);
    } finally {
      engine.complete = complete;
    }
  }, 120_000);
});
