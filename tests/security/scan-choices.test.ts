/**
 * Non-streamed answers with n > 1 choices: every choice goes through a response filter of its own, as streamed
 * choices do. They were scanned through one filter, joined by a separator, and a match could run across it: a
 * choice ending in "pwd=" took the separator and the next choice's first word as its password, the redaction
 * swallowed the separator, and every choice came back empty with finish_reason content_filter (over-redaction).
 * Checked through the real server on the tiny model (a JSON-schema grammar forces the text) and through the
 * gateway over an upstream that answers exactly what the test gives it.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import OpenAI from "openai";
import { recordingUpstream, startGateway } from "../gateway/gateway-helpers";
import { listenApp, makeApp, makeEngine } from "../helpers";

const engine = makeEngine();
afterAll(async () => (await engine).dispose());
const cleanup: (() => unknown)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

/** A local server on the tiny model; `answer` forced by a grammar, n choices. */
async function localChat(answer: string, n: number, action: "redact" | "block" = "redact") {
  const ctx = await makeApp({ engine: await engine, config: { responseScan: { action } } });
  cleanup.push(() => ctx.app.stop(true));
  const client = new OpenAI({ apiKey: ctx.key, baseURL: `${listenApp(ctx.app)}/v1`, maxRetries: 0 });
  return client.chat.completions.create({ model: "tiny", n, max_tokens: 200, messages: [{ role: "user", content: "say it" }],
    response_format: { type: "json_schema", json_schema: { name: "a", schema: { type: "object", properties: { a: { const: answer } }, required: ["a"] } } } });
}

/** A gateway over an upstream whose non-streamed answer has the given choice texts. */
async function gateway(texts: string[], action: "redact" | "block" = "redact") {
  const up = recordingUpstream((_req, s) => {
    if (s.path.endsWith("/models")) return Response.json({ object: "list", data: [] });
    const choices = s.path.endsWith("/chat/completions")
      ? texts.map((content, index) => ({ index, message: { role: "assistant", content }, finish_reason: "stop" }))
      : texts.map((text, index) => ({ index, text, finish_reason: "stop" }));
    return Response.json({ id: "x", object: s.path.endsWith("/chat/completions") ? "chat.completion" : "text_completion", created: 1, model: "m",
      choices, usage: { prompt_tokens: 3, completion_tokens: 9, total_tokens: 12 } });
  });
  cleanup.push(() => up.stop());
  const gw = await startGateway({ upstreams: [{ url: up.url, models: ["m"] }], gateway: { retries: 0, healthIntervalMs: 0 }, responseScan: { action } } as never);
  cleanup.push(() => gw.close());
  return new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
}

test("local model, n = 2: a choice ending in pwd= does not take the next choice's text as its password", async () => {
  const r = await localChat("pwd=", 2);
  const got = r.choices.map((c) => ({ a: c.message.content ? JSON.parse(c.message.content).a : c.message.content, finish: c.finish_reason }));
  // Before: both empty, content_filter (the redaction ran across the separator between them).
  expect(got).toEqual([{ a: "pwd=", finish: "stop" }, { a: "pwd=", finish: "stop" }]);
});

test("local model, n = 2: a secret in every choice is still redacted in every choice", async () => {
  const r = await localChat("key AKIAIOSFODNN7EXAMPLE", 2);
  expect(r.choices.map((c) => JSON.parse(c.message.content!).a)).toEqual(["key [REDACTED:aws-access-token]", "key [REDACTED:aws-access-token]"]);
});

test("gateway, chat and completions, n = 3: choices are scanned apart; a finding affects only its own choice", async () => {
  const texts = ["set pwd=", "hello world, nothing to hide", "the key is AKIAIOSFODNN7EXAMPLE"];
  const chat = await (await gateway(texts)).chat.completions.create({ model: "m", n: 3, messages: [{ role: "user", content: "x" }] });
  expect(chat.choices.map((c) => [c.message.content, c.finish_reason])).toEqual([
    ["set pwd=", "stop"], ["hello world, nothing to hide", "stop"], ["the key is [REDACTED:aws-access-token]", "stop"]]);
  const text = await (await gateway(texts)).completions.create({ model: "m", n: 3, prompt: "x" });
  expect(text.choices.map((c) => [c.text, c.finish_reason])).toEqual([
    ["set pwd=", "stop"], ["hello world, nothing to hide", "stop"], ["the key is [REDACTED:aws-access-token]", "stop"]]);
});

test("gateway, block mode, n = 2: the choice with a secret is blocked, the other one is answered (as in streams)", async () => {
  const chat = await (await gateway(["the key is AKIAIOSFODNN7EXAMPLE", "hello world"], "block")).chat.completions.create({ model: "m", n: 2, messages: [{ role: "user", content: "x" }] });
  expect(chat.choices.map((c) => [c.message.content, c.finish_reason])).toEqual([["", "content_filter"], ["hello world", "stop"]]);
});
