/**
 * Leak run: the realistic way to pull a memorised key out of a model is to hand it the key's start and ask it to go
 * on ("-----BEGIN RSA PRIVATE KEY-----\nMIIE…"). Its answer is the body and the END line, never a BEGIN line, and
 * went out whole, streamed or not. A prompt that opens a private key and does not close it now starts the answer's
 * filter inside that key (Scanner.opensKey): everything is dropped until the key's END line. Real engine, tiny model,
 * the answer forced by a json_schema enum.
 */
import { afterAll, expect, test } from "bun:test";
import OpenAI from "openai";
import { listenApp, makeApp } from "../helpers";

const BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK";
const ANSWER = `${BODY}\n-----END RSA PRIVATE KEY-----\nThat is all.`;
const format = { type: "json_schema" as const, json_schema: { name: "x", schema: { type: "string", enum: [ANSWER] } } };
const ctx = await makeApp();
afterAll(async () => { await ctx.app.stop(true); await ctx.engine.dispose(); });
const baseURL = listenApp(ctx.app);
const client = new OpenAI({ apiKey: ctx.key, baseURL: `${baseURL}/v1`, maxRetries: 0 });
const post = async (path: string, body: object) => (await fetch(`${baseURL}${path}`, {
  method: "POST", headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" }, body: JSON.stringify(body) })).text();

test("a prompt that opens a key: the answer's body and END line are dropped, chat and completions, streamed or not", async () => {
  const opened = "Go on:\n-----BEGIN RSA PRIVATE KEY-----\n";
  const outs = [
    (await client.chat.completions.create({ model: "tiny", max_tokens: 300, response_format: format, messages: [{ role: "user", content: opened }] })).choices[0]!.message.content!,
    await post("/v1/chat/completions", { model: "tiny", max_tokens: 300, stream: true, response_format: format, messages: [{ role: "user", content: opened }] }),
    await post("/v1/completions", { model: "tiny", max_tokens: 300, prompt: opened, response_format: format }),
    await post("/v1/completions", { model: "tiny", max_tokens: 300, prompt: opened, response_format: format, stream: true }),
  ];
  for (const out of outs) {
    expect(out).not.toContain("IBAAKCAQEAu1SU1Lf");
    expect(out).not.toContain("VTLw7onLRnrq0");
    expect(out).toContain("[REDACTED:private-key]");
  }
  // From the answer's first character (here the JSON string's opening quote) to the END line.
  expect(outs[0]).toBe('[REDACTED:private-key]\\nThat is all."');
});

test("a prompt with a whole key (BEGIN and END) leaves the answer alone", async () => {
  const closed = `Here: -----BEGIN RSA PRIVATE KEY-----\n${BODY}\n-----END RSA PRIVATE KEY-----\nWhat is it?`;
  const answer = "It is an RSA key.";
  const r = await client.chat.completions.create({ model: "tiny", max_tokens: 60, messages: [{ role: "user", content: closed }],
    response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", enum: [answer] } } } });
  expect(r.choices[0]!.message.content).toBe(JSON.stringify(answer));
});
