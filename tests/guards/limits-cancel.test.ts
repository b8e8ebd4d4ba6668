/**
 * Operations run: a stream cancelled right after its first chunk was charged nothing against its key's token limit
 * (nor counted in appliance_tokens_total or the audit record), though its prompt was evaluated: node-llama-cpp threw
 * AbortError when the abort came during the prompt's evaluation, so the usage was lost, and a key could have the
 * server evaluate prompts without limit. Real engine, real app; the clock is frozen (no refill).
 */
import { expect, test } from "bun:test";
import { makeApp, req, until } from "../helpers";

const long = "hello world ".repeat(120);

test("a generation cancelled once it holds a slot resolves with its usage (the prompt it was given, what it sampled)", async () => {
  const { engine } = await makeApp();
  const ac = new AbortController();
  // Cancelled the moment it gets its slot: before, during or after node-llama-cpp's evaluation of the prompt.
  const g = await engine.chat({ model: "tiny", messages: [{ role: "user", content: long }], sampling: { maxTokens: 50, temperature: 0 } as never,
    signal: ac.signal, onStage: (stage: string) => { if (stage === "slot") ac.abort(); } } as never);
  expect(g.promptTokens).toBeGreaterThan(200);
  expect(g.completionTokens).toBeLessThanOrEqual(1);
});

test("a stream cancelled after its first chunk is charged to its key", async () => {
  const now = Date.now();
  const { app, key } = await makeApp({ clock: () => now, keys: [{ name: "t", tpm: 100_000, rpm: 0 }] });
  const remaining = async () => {
    const r = await app.handle(req("/v1/models", { key }));
    await r.arrayBuffer();
    return Number(r.headers.get("x-ratelimit-remaining-tokens"));
  };
  expect(await remaining()).toBe(100_000);
  const ac = new AbortController();
  const r = await app.handle(req("/v1/chat/completions", { key, signal: ac.signal, json: { model: "tiny", stream: true, max_tokens: 200,
    messages: [{ role: "user", content: long }] } }));
  expect(r.status).toBe(200);
  const reader = r.body!.getReader();
  await reader.read(); // the first chunk (the role, sent once admitted), then the client goes away
  ac.abort();
  await reader.cancel().catch(() => undefined);
  // Settled when the engine has let go of it; the prompt alone is ~1,000 tokens.
  const left = await until(async () => { const n = await remaining(); return n < 100_000 ? n : undefined; }, 20_000, "the cancelled stream to be charged");
  expect(100_000 - left).toBeGreaterThan(200);
});
