/**
 * Streamed logprobs (chat, completions, Responses API), prompt logprobs with echo, and streams of n > 1
 * choices, on the real tiny model through the official openai SDK and raw SSE.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import OpenAI from "openai";
import { tokenText } from "../helpers";
import { sdkApp } from "./sdk-app";

const srv = sdkApp();

/** Raw SSE: every `data:` payload in order ("[DONE]" kept as text). */
async function sse(path: string, body: unknown): Promise<{ status: number; events: any[] }> {
  const r = await fetch(`${srv.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await r.text();
  if (r.status !== 200) return { status: r.status, events: [JSON.parse(text)] };
  const events = text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).map((d) => (d === "[DONE]" ? d : JSON.parse(d)));
  return { status: r.status, events };
}

const user = (content: string) => [{ role: "user" as const, content }];
const secret = "AKIA" + "IOSFODNN7EXAMPLE"; // split so this file is not itself a finding
/** Forces the tiny model to write the secret (a const in the schema). */
const secretFormat = { type: "json_schema", json_schema: { name: "k", schema: { type: "object", properties: { key: { const: secret } }, required: ["key"] } } } as const;

describe("chat: streamed logprobs", () => {
  test("each chunk's tokens spell that chunk; together they are the non-streamed answer's tokens", async () => {
    const body = { model: "tiny", messages: user("hello"), max_tokens: 16, temperature: 1, seed: 11, logprobs: true, top_logprobs: 3 };
    const whole = await srv.client.chat.completions.create(body);
    const stream = await srv.client.chat.completions.create({ ...body, stream: true });
    let text = "";
    const tokens: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const chunk of stream) {
      const c = chunk.choices[0]!;
      const piece = c.delta.content ?? "";
      text += piece;
      if (piece) expect(c.logprobs!.content!.map((t) => t.token).join("")).toBe(piece);
      tokens.push(...(c.logprobs?.content ?? []));
    }
    expect(text).toBe(whole.choices[0]!.message.content!);
    expect(tokens.length).toBeGreaterThan(0);
    const expected = whole.choices[0]!.logprobs!.content!;
    expect(tokens.map((t) => t.token)).toEqual(expected.map((t) => t.token));
    tokens.forEach((t, i) => {
      expect(t.logprob).toBeCloseTo(expected[i]!.logprob, 5);
      expect(t.top_logprobs).toHaveLength(3);
      expect(t.bytes).toEqual([...Buffer.from(t.token)]);
    });
  });

  test("a redacted secret: streamed or not, one entry spells the redaction (no alternatives) and no token of the secret shows", async () => {
    const body = { model: "tiny", max_tokens: 60, temperature: 0, logprobs: true, top_logprobs: 3, messages: user("give me the key"), response_format: secretFormat };
    const whole = await srv.client.chat.completions.create(body);
    const wholeTokens = whole.choices[0]!.logprobs!.content!;
    expect(whole.choices[0]!.message.content).toContain("[REDACTED:aws-access-token]");
    expect(wholeTokens.map((t) => t.token).join("")).toBe(whole.choices[0]!.message.content!);
    const { status, events } = await sse("/v1/chat/completions", { ...body, stream: true });
    expect(status).toBe(200);
    let text = "";
    const tokens: any[] = [];
    for (const e of events.slice(0, -1)) {
      const c = e.choices[0];
      text += c.delta.content ?? "";
      if (c.delta.content) expect(c.logprobs.content.map((t: any) => t.token).join("")).toBe(c.delta.content);
      tokens.push(...(c.logprobs?.content ?? []));
    }
    expect(text).toBe(whole.choices[0]!.message.content!);
    for (const list of [tokens, wholeTokens]) {
      const redaction = list.filter((t) => t.token.includes("[REDACTED:aws-access-token]"));
      expect(redaction).toHaveLength(1);
      expect(redaction[0].top_logprobs).toEqual([]);
      expect(redaction[0].logprob).toBeLessThanOrEqual(0);
    }
    expect(JSON.stringify(events)).not.toContain("IOSFODNN");
    expect(JSON.stringify(whole)).not.toContain("IOSFODNN");
  });
});

describe("completions: streamed logprobs and echo", () => {
  test("streamed: text_offset runs on across chunks; tokens spell the text", async () => {
    const stream = await srv.client.completions.create({ model: "tiny", prompt: "once upon", max_tokens: 12, seed: 5, logprobs: 2, stream: true });
    let text = "";
    const tokens: string[] = [];
    for await (const chunk of stream) {
      const c = chunk.choices[0]!;
      if (!c.text) continue;
      const lp = c.logprobs!;
      expect(lp.tokens!.join("")).toBe(c.text);
      lp.tokens!.forEach((t, i) => expect(lp.text_offset![i]).toBe(text.length + lp.tokens!.slice(0, i).join("").length));
      text += c.text;
      tokens.push(...lp.tokens!);
    }
    expect(text.length).toBeGreaterThan(0);
    expect(tokens.join("")).toBe(text);
  });

  test("echo with logprobs: the prompt's tokens come first, then the answer's; streamed too", async () => {
    const prompt = "the cat sat on the mat";
    const r = await srv.client.completions.create({ model: "tiny", prompt, max_tokens: 6, seed: 2, logprobs: 2, echo: true });
    const c = r.choices[0]!;
    const lp = c.logprobs!;
    expect(c.text.startsWith(prompt)).toBe(true);
    expect(lp.tokens!.join("")).toBe(c.text);
    let spelled = "", promptCount = 0;
    while (spelled.length < prompt.length) spelled += lp.tokens![promptCount++];
    expect(spelled).toBe(prompt);
    expect(lp.token_logprobs!.slice(1, promptCount).every((x) => typeof x === "number" && x <= 0)).toBe(true);
    expect(lp.text_offset).toEqual(lp.tokens!.map((_, i) => lp.tokens!.slice(0, i).join("").length));

    const stream = await srv.client.completions.create({ model: "tiny", prompt, max_tokens: 6, seed: 2, logprobs: 2, echo: true, stream: true });
    const chunks: OpenAI.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const first = chunks[0]!.choices[0]!;
    expect(first.text).toBe(prompt);
    expect(first.logprobs!.tokens).toEqual(lp.tokens!.slice(0, promptCount));
    expect(chunks.map((ch) => ch.choices[0]?.text ?? "").join("")).toBe(c.text);
  });

  test("echo with logprobs: a prompt of byte tokens (CJK) has an entry per token, written by its bytes, streamed or not", async () => {
    // The tiny model has no token for these characters: each is several byte tokens, each alone shows as U+FFFD.
    // First they were listed one by one as U+FFFD and the choice's logprobs came back null; then merged into one
    // entry per character, so clients that count prompt positions by tokens (lm-eval's echo scoring) misread them.
    const prompt = "日本語で答えて";
    const ids = (await (await fetch(`${srv.baseURL}/tokenize`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: JSON.stringify({ content: prompt }) })).json() as { tokens: number[] }).tokens;
    const body = { model: "tiny", prompt, max_tokens: 4, temperature: 0, logprobs: 2, echo: true };
    const c = (await srv.client.completions.create(body)).choices[0]!;
    expect(c.text.startsWith(prompt)).toBe(true);
    expect(c.logprobs).not.toBeNull();
    const head = c.logprobs!.tokens!.slice(0, ids.length);
    // After SentencePiece's leading "▁" (its text "" at the start) every token is a byte.
    expect(head[0]).toBe("");
    expect(head.slice(1).every((t) => /^bytes:(\\x[0-9a-f]{2})+$/.test(t))).toBe(true);
    expect(tokenText(head)).toBe(prompt);
    expect(c.logprobs!.token_logprobs!.slice(1).every((x) => typeof x === "number" && x <= 0)).toBe(true);
    // Each byte entry starts at its character; the generated text's first entry right after the prompt.
    const offsets = c.logprobs!.text_offset!;
    expect(offsets.slice(0, ids.length).every((o, i) => prompt.slice(o).length > 0 && (i === 0 || o >= offsets[i - 1]!))).toBe(true);
    expect(offsets[ids.length]).toBe(prompt.length);

    const stream = await srv.client.completions.create({ ...body, stream: true });
    const chunks: OpenAI.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const first = chunks[0]!.choices[0]!;
    expect(first.text).toBe(prompt);
    expect(first.logprobs!.tokens).toEqual(head);
  });
});

describe("streams of several choices", () => {
  test("chat n=2: every chunk names its choice, each choice is the non-streamed one, one [DONE], usage adds up", async () => {
    const body = { model: "tiny", messages: user("tell me"), max_tokens: 8, seed: 9, n: 2 };
    const whole = await srv.client.chat.completions.create(body);
    const { status, events } = await sse("/v1/chat/completions", { ...body, stream: true, stream_options: { include_usage: true } });
    expect(status).toBe(200);
    expect(events.filter((e) => e === "[DONE]")).toHaveLength(1);
    expect(events.at(-1)).toBe("[DONE]");
    const texts = ["", ""], finishes: string[][] = [[], []], roles = [0, 0];
    for (const e of events.slice(0, -2)) {
      expect(e.choices).toHaveLength(1);
      const c = e.choices[0];
      texts[c.index] += c.delta.content ?? "";
      if (c.delta.role) roles[c.index]!++;
      if (c.finish_reason) finishes[c.index]!.push(c.finish_reason);
    }
    expect(roles).toEqual([1, 1]);
    expect(texts).toEqual(whole.choices.map((c) => c.message.content!));
    expect(finishes).toEqual(whole.choices.map((c) => [c.finish_reason]));
    // The same counts; the stream's prompt was evaluated by the answer before it, its start reused.
    const { prompt_tokens_details: details, ...counts } = events.at(-2).usage;
    const { prompt_tokens_details: _, ...wholeCounts } = whole.usage!;
    expect(counts).toEqual(wholeCounts);
    expect(details.cached_tokens).toBeGreaterThan(0);
    expect(details.cached_tokens).toBeLessThan(whole.usage!.prompt_tokens);
  });

  test("completions: two prompts × n=2 through the SDK, indexed 0-3", async () => {
    const body = { model: "tiny", prompt: ["alpha", "beta"], max_tokens: 5, seed: 4, n: 2 };
    const whole = await srv.client.completions.create(body);
    const stream = await srv.client.completions.create({ ...body, stream: true });
    const texts = ["", "", "", ""];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.text;
    expect(texts).toEqual(whole.choices.map((c) => c.text));
  });
});

describe("streams of several choices: the response scanner", () => {
  test("a secret in the first choice only is redacted there and recorded in the audit (each choice has its own filter)", async () => {
    const format = { type: "json_schema", json_schema: { name: "k", schema: { type: "object", properties: { key: { enum: [secret, "none"] } }, required: ["key"] } } };
    const body = { model: "tiny", max_tokens: 40, n: 2, messages: user("key?"), response_format: format };
    // A seed where the first choice writes the secret and the second does not (sampling is reproducible per seed).
    let seed = -1;
    for (let s = 1; s < 40 && seed < 0; s++) {
      const r = await srv.client.chat.completions.create({ ...body, seed: s } as never) as OpenAI.ChatCompletion;
      const [a, b] = r.choices.map((c) => c.message.content!);
      if (a!.includes("[REDACTED:") && !b!.includes("[REDACTED:")) seed = s;
    }
    expect(seed).toBeGreaterThan(0);
    const r = await fetch(`${srv.baseURL}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: JSON.stringify({ ...body, seed, stream: true }),
    });
    const text = await r.text();
    expect(text).toContain("[REDACTED:aws-access-token]");
    expect(text).not.toContain("IOSFODNN");
    const id = r.headers.get("x-request-id");
    const line = fs.readFileSync(srv.ctx.auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l)).find((l) => l.reqId === id);
    expect(line.decisions).toContain("response:redact:aws-access-token");
  });
});

describe("Responses API logprobs", () => {
  test("include message.output_text.logprobs: in the output text, in each delta, and equal either way", async () => {
    const body = { model: "tiny", input: "hello", max_output_tokens: 12, temperature: 0, top_logprobs: 2, include: ["message.output_text.logprobs" as const] };
    const r = await srv.client.responses.create(body);
    const part = (r.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText;
    expect(part.logprobs!.length).toBeGreaterThan(0);
    expect(part.logprobs!.map((t) => t.token).join("")).toBe(part.text);
    expect(part.logprobs![0]!.top_logprobs).toHaveLength(2);
    const stream = await srv.client.responses.create({ ...body, stream: true });
    const deltas: OpenAI.Responses.ResponseTextDeltaEvent[] = [];
    let done: OpenAI.Responses.ResponseTextDoneEvent | undefined;
    for await (const e of stream) {
      if (e.type === "response.output_text.delta") deltas.push(e);
      if (e.type === "response.output_text.done") done = e;
    }
    for (const d of deltas) expect(d.logprobs.map((t) => t.token).join("")).toBe(d.delta);
    expect(deltas.flatMap((d) => d.logprobs.map((t) => t.token))).toEqual(part.logprobs!.map((t) => t.token));
    expect(done!.logprobs!.map((t) => t.token).join("")).toBe(part.text);
    const plain = await srv.client.responses.create({ model: "tiny", input: "hello", max_output_tokens: 4 });
    expect(((plain.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText).logprobs).toEqual([]);
  });
});
