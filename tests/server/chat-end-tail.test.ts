/**
 * Chat: an end token right after a byte token that starts a character. node-llama-cpp drops the held byte's text,
 * while a stream with early release (src/engine/early-text.ts) had already sent it, so the streamed and the
 * non-streamed answer differed ('… saidJ' vs '… saidJ\uFFFD', found by a fuzz of the binary). The held tail is now
 * kept at an end token as at max_tokens, as completions do (completion-text.test.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { makeApp, req } from "../helpers";

let t: Awaited<ReturnType<typeof makeApp>>;
beforeAll(async () => { t = await makeApp({ config: { rateLimit: { rpm: 0, tpm: 0 } } }); }, 120_000);
afterAll(async () => { await t.engine.dispose(); });

const CASES = [
  { messages: [{ role: "user", content: [{ type: "text", text: "日本語で答えて" }, { type: "text", text: '{"json": true}' }], name: "bob" }], seed: 196, temperature: 1, max_tokens: 8 }, // seed re-found when parts became newline-joined
  { messages: [{ role: "user", content: "你好，世界" }], seed: 51682, temperature: 0.7, max_tokens: 16 },
];

test.each(CASES.map((c, i) => [i, c] as const))("case %d: the streamed and the non-streamed answer are the same, the held byte included", async (_, body) => {
  const full = await (await t.app.handle(req("/v1/chat/completions", { key: t.key, json: { model: "tiny", ...body } }))).json() as
    { choices: { message: { content: string }; finish_reason: string }[]; usage: { completion_tokens: number } };
  const sse = await (await t.app.handle(req("/v1/chat/completions", { key: t.key, json: { model: "tiny", ...body, stream: true } }))).text();
  const chunks = sse.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)) as { choices: { delta: { content?: string }; finish_reason: string | null }[] });
  const streamed = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
  expect(full.choices[0]!.finish_reason).toBe("stop"); // ended by the model's end token, not max_tokens
  expect(full.usage.completion_tokens).toBeLessThan(body.max_tokens);
  expect(full.choices[0]!.message.content.endsWith("\uFFFD")).toBe(true);
  expect(streamed).toBe(full.choices[0]!.message.content);
}, 60_000);
