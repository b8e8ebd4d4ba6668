/**
 * Prompt reuse (engine/sequence-pool.ts): a prompt that starts as an earlier one from the same key evaluates only
 * what follows, says so in usage.prompt_tokens_details.cached_tokens, and answers exactly as a whole evaluation
 * does (the same seeded sample, the same logprobs); another key's prompt is never reused. Real engine, the app
 * listening, the openai SDK as the client.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { listenApp, makeApp, makeEngine } from "../helpers";

type Ctx = Awaited<ReturnType<typeof makeApp>>;
const apps: Ctx[] = [];
/** Where each decode of the tiny model's context started in its sequence (a prompt's first decode: the tokens reused). */
const starts: number[] = [];

function spyStarts(ctx: Ctx) {
  const context = (ctx.engine as unknown as { loaded: Map<string, { context: Record<string, unknown> }> }).loaded.get("tiny")!.context;
  const decode = context._decodeTokens as (args: { firstTokenSequenceIndex: number }, mapper: unknown) => Promise<unknown>;
  context._decodeTokens = (args: { firstTokenSequenceIndex: number }, mapper: unknown) => {
    starts.push(args.firstTokenSequenceIndex);
    return decode.call(context, args, mapper);
  };
}

async function app(promptCache = true) {
  const engine = await makeEngine({ parallel: 1, promptCache });
  const ctx = await makeApp({ engine, keys: [{ name: "alice", scopes: ["chat", "completions"] }, { name: "bob", scopes: ["chat", "completions"] }] });
  apps.push(ctx);
  spyStarts(ctx);
  const base = `${listenApp(ctx.app)}/v1`;
  return { ctx, alice: new OpenAI({ apiKey: ctx.keys[0]!, baseURL: base, maxRetries: 0 }), bob: new OpenAI({ apiKey: ctx.keys[1]!, baseURL: base, maxRetries: 0 }) };
}

let on: Awaited<ReturnType<typeof app>>;
beforeAll(async () => { on = await app(); });
afterAll(async () => {
  for (const ctx of apps) { await ctx.app.stop(true); await ctx.engine.dispose(); }
});

// Over 64 tokens (flash attention's tile, sequence-pool.ts): a prompt of 64 or more reuses all but its last 64.
const SYSTEM = "You are the archivist of a small museum of clocks, water clocks, sundials and tower clocks gathered over two " +
  "centuries by the town. Answer in one short sentence, naming the clock's maker, the workshop, the town and its year, " +
  "and say whether it still runs today.";
const ask = (client: OpenAI, user: string, history: OpenAI.Chat.ChatCompletionMessageParam[] = []) =>
  client.chat.completions.create({ model: "tiny", messages: [{ role: "system", content: SYSTEM }, ...history, { role: "user", content: user }], max_tokens: 8, temperature: 0 });
const cached = (r: { usage?: { prompt_tokens_details?: { cached_tokens?: number } } }) => r.usage?.prompt_tokens_details?.cached_tokens;

describe("a prompt that starts as an earlier one from the same key", () => {
  test("evaluates only what follows the shared start, and usage says how much was cached", async () => {
    const first = await ask(on.alice, "which clock is oldest");
    const from = starts.length;
    const second = await ask(on.alice, "which clock is loudest");
    // The system turn was evaluated for the first request only: all of the prompt but its last 64 tokens is reused.
    expect(second.usage!.prompt_tokens).toBeGreaterThan(100);
    expect(cached(second)).toBe(second.usage!.prompt_tokens - 64);
    expect(cached(second)!).toBeGreaterThan(cached(first)!);
    // The engine's first decode of the second prompt starts right after the reused tokens.
    expect(starts[from]).toBe(cached(second)!);
  });

  test("the same prompt again reuses its start and answers exactly as before", async () => {
    const a = await ask(on.alice, "who made the tower clock");
    const b = await ask(on.alice, "who made the tower clock");
    expect(cached(b)).toBe(b.usage!.prompt_tokens - 64);
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content!);
  });

  test("the next turn of a conversation reuses the conversation so far", async () => {
    const turn1 = await ask(on.alice, "describe the water clock");
    const history: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: "user", content: "describe the water clock" }, turn1.choices[0]!.message];
    const turn2 = await ask(on.alice, "and its keeper", history);
    // The first turn's prompt is reused as far as the last 64 tokens of the second's.
    expect(cached(turn2)).toBe(turn2.usage!.prompt_tokens - 64);
    expect(cached(turn2)).toBeGreaterThan(turn1.usage!.prompt_tokens / 2);
  });

  test("streamed usage says the same", async () => {
    await ask(on.alice, "which clock chimes");
    const created = await ask(on.alice, "which clock chimes");
    const stream = await on.alice.chat.completions.create({ model: "tiny", messages: [{ role: "system", content: SYSTEM }, { role: "user", content: "which clock chimes" }],
      max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage!.prompt_tokens_details?.cached_tokens).toBe(cached(created));
  });
});

describe("never across keys", () => {
  test("bob's prompt, the same as alice's, is evaluated whole", async () => {
    const a = await ask(on.alice, "when was the pendulum clock made");
    const aa = await ask(on.alice, "when was the pendulum clock made");
    const from = starts.length;
    const b = await ask(on.bob, "when was the pendulum clock made");
    expect(cached(aa)).toBe(aa.usage!.prompt_tokens - 64);
    expect(cached(b)).toBe(0);
    expect(starts[from]).toBe(0);
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content!);
  });
});

describe("a reused start answers exactly as a whole evaluation", () => {
  // The same seeded temperature-1 sample and the same logprobs with reuse as without, for prompts under 64 tokens,
  // over 64, and over 512 (two ubatches). Before: the last token alone evaluated again changed logprobs in the 4th
  // decimal and a seeded sample (llama.cpp's kernels sum in another order for one token, and flash attention in
  // another below 64 tokens).
  const words = "the of and to in is you that it he was for on are as with his they at be this have from or one had by".split(" ");
  const system = (n: number) => Array.from({ length: n }, (_, i) => words[(i * 5) % words.length]).join(" ");
  test.each([8, 60, 400])("system turn of %i words", async (n) => {
    const reuse = await makeEngine({ parallel: 1 }), whole = await makeEngine({ parallel: 1, promptCache: false });
    try {
      const call = (engine: typeof reuse, user: string, seed: number) => engine.chat({
        model: "tiny", messages: [{ role: "system", content: system(n) }, { role: "user", content: user }], cacheScope: "k",
        sampling: { maxTokens: 10, temperature: 1, seed, logprobs: 2 }, signal: new AbortController().signal,
      });
      await call(reuse, "which clock", 1);
      for (const [user, seed] of [["which clock", 2], ["who made the bell", 3], ["why", 4]] as const) {
        const [a, b] = [await call(reuse, user, seed), await call(whole, user, seed)];
        expect(a.cachedTokens).toBeGreaterThan(0);
        expect(b.cachedTokens).toBe(0);
        expect([a.text, a.logprobs]).toEqual([b.text, b.logprobs]);
      }
    } finally {
      await reuse.dispose();
      await whole.dispose();
    }
  }, 120_000);
});

describe("config promptCache false", () => {
  test("every prompt is evaluated whole", async () => {
    const off = await app(false);
    await ask(off.alice, "which clock is oldest");
    const from = starts.length;
    const again = await ask(off.alice, "which clock is oldest");
    expect(cached(again)).toBe(0);
    expect(starts[from]).toBe(0);
  });
});
