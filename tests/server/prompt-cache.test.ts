/**
 * Prompt reuse (engine/sequence-pool.ts): a prompt that starts as an earlier one from the same key evaluates only
 * what follows, says so in usage.prompt_tokens_details.cached_tokens, and answers exactly as a whole evaluation
 * does; another key's prompt is never reused. Real engine, the app listening, the openai SDK as the client.
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

const SYSTEM = "You are the archivist of a small museum of clocks. Answer in one short sentence, naming the clock's maker and its year.";
const ask = (client: OpenAI, user: string, history: OpenAI.Chat.ChatCompletionMessageParam[] = []) =>
  client.chat.completions.create({ model: "tiny", messages: [{ role: "system", content: SYSTEM }, ...history, { role: "user", content: user }], max_tokens: 8, temperature: 0 });
const cached = (r: { usage?: { prompt_tokens_details?: { cached_tokens?: number } } }) => r.usage?.prompt_tokens_details?.cached_tokens;

describe("a prompt that starts as an earlier one from the same key", () => {
  test("evaluates only what follows the shared start, and usage says how much was cached", async () => {
    const first = await ask(on.alice, "which clock is oldest");
    const from = starts.length;
    const second = await ask(on.alice, "which clock is loudest");
    // The system turn (dozens of tokens) was evaluated for the first request only.
    expect(cached(second)).toBeGreaterThan(20);
    expect(cached(second)).toBeLessThan(second.usage!.prompt_tokens);
    expect(cached(second)!).toBeGreaterThan(cached(first)!);
    // The engine's first decode of the second prompt starts right after the reused tokens.
    expect(starts[from]).toBe(cached(second)!);
  });

  test("the same prompt again reuses all but its last token and answers exactly as before", async () => {
    const a = await ask(on.alice, "who made the tower clock");
    const b = await ask(on.alice, "who made the tower clock");
    expect(cached(b)).toBe(b.usage!.prompt_tokens - 1);
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content!);
  });

  test("the next turn of a conversation reuses the conversation so far", async () => {
    const turn1 = await ask(on.alice, "describe the water clock");
    const history: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: "user", content: "describe the water clock" }, turn1.choices[0]!.message];
    const turn2 = await ask(on.alice, "and its keeper", history);
    // Up to where the rendered history differs from what was generated (at most the turn's boundary token).
    expect(cached(turn2)).toBeGreaterThanOrEqual(turn1.usage!.prompt_tokens - 2);
  });

  test("streamed usage says the same", async () => {
    await ask(on.alice, "which clock chimes");
    const stream = await on.alice.chat.completions.create({ model: "tiny", messages: [{ role: "system", content: SYSTEM }, { role: "user", content: "which clock chimes" }],
      max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage!.prompt_tokens_details?.cached_tokens).toBe(usage!.prompt_tokens - 1);
  });
});

describe("never across keys", () => {
  test("bob's prompt, the same as alice's, is evaluated whole", async () => {
    const a = await ask(on.alice, "when was the pendulum clock made");
    const aa = await ask(on.alice, "when was the pendulum clock made");
    const from = starts.length;
    const b = await ask(on.bob, "when was the pendulum clock made");
    expect(cached(aa)).toBe(aa.usage!.prompt_tokens - 1);
    expect(cached(b)).toBe(0);
    expect(starts[from]).toBe(0);
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content!);
  });
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
