/** The OpenAI parameters beyond plain chat: n, logit_bias, prompt arrays and token ids, echo, embeddings dimensions; /tokenize. */
import { describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { sdkApp } from "./sdk-app";

// A key without the default 120 requests a minute: this file sends more than that in well under a minute (CI run 85
// got a 429 where a 400 was asked for).
const srv = sdkApp({ keys: [{ name: "test", scopes: ["chat", "completions", "embeddings", "models", "admin"], rpm: 0, tpm: 0 }] });

const post = async (path: string, body: unknown) => {
  const r = await fetch(`${srv.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as any };
};
const tokenize = async (content: string) => (await post("/tokenize", { content })).body.tokens as number[];
const error = (p: Promise<unknown>) => p.then(() => { throw new Error("expected an error"); }, (e) => e as InstanceType<typeof OpenAI.APIError>);

describe("/tokenize and /detokenize", () => {
  test("round trip, pieces, BOS, and ids outside the vocabulary", async () => {
    const tokens = await tokenize("hello world");
    expect(tokens.length).toBeGreaterThan(0);
    expect((await post("/detokenize", { model: "tiny", tokens })).body.content).toBe("hello world");
    const pieces = (await post("/tokenize", { content: "hello world", with_pieces: true })).body.tokens as { id: number; piece: string }[];
    expect(pieces.map((p) => p.id)).toEqual(tokens);
    expect(pieces.map((p) => p.piece).join("")).toBe("hello world");
    expect(((await post("/tokenize", { content: "hello world", add_special: true })).body.tokens as number[]).length).toBe(tokens.length + 1);
    const bad = await post("/detokenize", { tokens: [10_000_000] });
    expect([bad.status, bad.body.error.param]).toEqual([400, "tokens"]);
    expect((await post("/tokenize", { model: "nope", content: "x" })).status).toBe(404);
    // special-token spellings are text, not control tokens
    expect((await tokenize("<|im_end|>")).length).toBeGreaterThan(1);
  });
  // Client run: vLLM's spelling ({prompt, add_special_tokens}) and llama-server's parse_special were 400s.
  test("vLLM's spelling is taken and answered in vLLM's shape; parse_special false is taken, true refused", async () => {
    const tokens = (await post("/tokenize", { content: "hello world" })).body.tokens as number[];
    // vLLM's add_special_tokens defaults to true ("special tokens (e.g. BOS) will be added"): its count is what a
    // completion of the prompt charges (SDK run, stop 74: it was one lower).
    const withBos = (await post("/tokenize", { content: "hello world", add_special: true })).body.tokens as number[];
    const v = await post("/tokenize", { prompt: "hello world" });
    expect([v.status, v.body]).toEqual([200, { count: withBos.length, max_model_len: 2048, tokens: withBos }]);
    const completion = await post("/v1/completions", { model: "tiny", prompt: "hello world", max_tokens: 1 });
    expect(v.body.count).toBe(completion.body.usage.prompt_tokens);
    expect((await post("/tokenize", { prompt: "hello world", add_special_tokens: false })).body.tokens).toEqual(tokens);
    expect((await post("/tokenize", { content: "hello world", parse_special: false })).body.tokens).toEqual(tokens);
    const special = await post("/tokenize", { content: "<|im_start|>", parse_special: true });
    expect([special.status, special.body.error.param]).toEqual([400, "parse_special"]);
    const none = await post("/tokenize", {});
    expect([none.status, none.body.error.code, none.body.error.param]).toEqual([400, "missing_required_parameter", "content"]);
    expect((await post("/tokenize", { content: "a", prompt: "b" })).body.error.param).toBe("prompt");
  });
  // Client run (left by stop 35): vLLM's chat form ({messages}) was a 400 naming messages.
  test("vLLM's chat form: messages (and tools) as the chat template renders them, counted as chat completions count them", async () => {
    const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "hello there" }];
    const r = await post("/tokenize", { model: "tiny", messages });
    const chat = await srv.client.chat.completions.create({ model: "tiny", messages: messages as never, max_tokens: 1 });
    expect([r.status, r.body.count, r.body.max_model_len]).toEqual([200, chat.usage!.prompt_tokens, (srv.ctx.engine.model("tiny")!).contextSize]);
    expect(r.body.tokens).toHaveLength(r.body.count);
    // The template's own control tokens are there as tokens; a user's spelling of one is refused as chat refuses it.
    const strs = (await post("/tokenize", { messages, return_token_strs: true })).body.token_strs as string[];
    expect([strs.length, strs.filter((t) => t === "<|im_start|>").length, strs.join("").includes("hello there<|im_end|>")]).toEqual([r.body.count, 3, true]);
    const tools = [{ type: "function", function: { name: "get_weather", description: "Weather now", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    const withTools = await post("/tokenize", { messages, tools });
    const toolChat = await srv.client.chat.completions.create({ model: "tiny", messages: messages as never, tools: tools as never, max_tokens: 1 });
    expect(withTools.body.count).toBe(toolChat.usage!.prompt_tokens);
    expect(withTools.body.count).toBeGreaterThan(r.body.count);
    const typed = await post("/tokenize", { messages: [{ role: "user", content: "<|im_start|>system" }] });
    expect([typed.status, typed.body.error.code]).toEqual([400, (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "<|im_start|>system" }] })).body.error.code]);
    for (const [body, param] of [[{ messages, add_generation_prompt: false }, "add_generation_prompt"], [{ messages, content: "x" }, "content"],
      [{ messages, add_special_tokens: true }, "add_special_tokens"], [{ content: "x", tools }, "tools"], [{ messages: [] }, "messages"]] as const) {
      const e = await post("/tokenize", body);
      expect([body, e.status, e.body.error.param]).toEqual([body, 400, param]);
    }
  });
  test("a piece that is part of a UTF-8 character is its bytes, as llama-server gives it (it read \"\uFFFD\")", async () => {
    // The tiny vocabulary has no é: it is two byte tokens, <0xC3> <0xA9>.
    const pieces = (await post("/tokenize", { content: "héllo", with_pieces: true })).body.tokens as { id: number; piece: string | number[] }[];
    expect(pieces.filter((p) => Array.isArray(p.piece)).map((p) => p.piece)).toEqual([[0xc3], [0xa9]]);
    const bytes = pieces.flatMap((p) => (Array.isArray(p.piece) ? p.piece : [...Buffer.from(p.piece)]));
    expect(Buffer.from(bytes).toString()).toBe("héllo");
  });
});

describe("logit_bias", () => {
  test("+100 makes a token the answer; -100 bans it", async () => {
    const [token] = await tokenize("the");
    const piece = (await post("/detokenize", { tokens: [token] })).body.content as string;
    const r = await srv.client.completions.create({ model: "tiny", prompt: "x", max_tokens: 4, temperature: 0, logit_bias: { [token!]: 100 } });
    expect(r.choices[0]!.text.split(" ").filter(Boolean)).toEqual([piece.trim(), piece.trim(), piece.trim(), piece.trim()]);
    // Ban every token but that one: whatever is sampled (the end token cannot be banned) is that token.
    const size = (srv.ctx.engine as any).get("tiny").vocabularySize as number;
    expect(size).toBeLessThanOrEqual(1024);
    const bias = Object.fromEntries(Array.from({ length: size }, (_, i) => [i, -100]).filter(([i]) => i !== token));
    const banned = await srv.client.completions.create({ model: "tiny", prompt: "Once", max_tokens: 6, temperature: 1.5, seed: 9, logit_bias: bias });
    const words = banned.choices[0]!.text.split(" ").filter(Boolean);
    expect(words.every((w) => w === piece.trim())).toBe(true);
    const free = await srv.client.completions.create({ model: "tiny", prompt: "Once", max_tokens: 6, temperature: 1.5, seed: 9 });
    expect(free.choices[0]!.text).not.toBe(banned.choices[0]!.text);
  });
  // Client run: node-llama-cpp's TokenBias skips end-of-generation tokens, so banning the end token (OpenAI's classic
  // use: no early stop) or +100 on it (stop at once) was accepted and did nothing.
  test("on the end token: -100 lets a generation that ended run to max_tokens; +100 ends it at once", async () => {
    const loaded = (srv.ctx.engine as any).get("tiny");
    const ends = Array.from({ length: loaded.vocabularySize as number }, (_, i) => i).filter((t) => loaded.model.isEogToken(t));
    expect(ends.length).toBeGreaterThan(0);
    const ask = (seed: number, bias?: Record<string, number>) =>
      srv.client.completions.create({ model: "tiny", prompt: "x", max_tokens: 30, seed, ...(bias && { logit_bias: bias }) });
    let seed = 1;
    while ((await ask(seed)).choices[0]!.finish_reason !== "stop") expect(++seed).toBeLessThan(200);
    const banned = await ask(seed, Object.fromEntries(ends.map((t) => [t, -100])));
    expect([banned.choices[0]!.finish_reason, banned.usage!.completion_tokens]).toEqual(["length", 30]);
    const forced = await ask(seed + 1, { [loaded.model.tokens.eos]: 100 });
    expect([forced.choices[0]!.finish_reason, forced.choices[0]!.text]).toEqual(["stop", ""]);
  });
  test("a token id outside the vocabulary → 400 naming logit_bias", async () => {
    const e = await error(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], logit_bias: { "99999999": 5 } }));
    expect([e.status, e.param]).toEqual([400, "logit_bias"]);
  });
});

describe("n", () => {
  test("n choices, each seeded on its own (reproducible), usage adds up", async () => {
    const ask = () => srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, n: 3, seed: 5 });
    const a = await ask(), b = await ask();
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(a.choices.map((c) => c.message.content)).toEqual(b.choices.map((c) => c.message.content));
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    const one = await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, seed: 5 });
    expect(a.usage!.prompt_tokens).toBe(one.usage!.prompt_tokens);
    expect(a.choices[0]!.message.content).toBe(one.choices[0]!.message.content);
  });
  // Client run: seed 4294967295 is llama.cpp's "random seed" (not reproducible), node-llama-cpp made every negative seed
  // 0 (so n choices seeded seed + i repeated each other), and OpenAI's int64 seeds past 2^32 were a 400.
  test("every seed is reproducible and its own: 2^32 - 1, negatives, past 2^32; n choices around them differ", async () => {
    const text = async (seed: number, n = 1) => (await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 8, seed, n }))
      .choices.map((c) => c.message.content);
    expect(await text(4294967295)).toEqual(await text(4294967295));
    expect(await text(4294967296)).toEqual(await text(4294967296));
    const negatives = [...await text(-1), ...await text(-5), ...await text(0)];
    expect(new Set(negatives).size).toBe(3);
    const around = await text(-2, 3); // seeds -2, -1, 0
    expect(new Set(around).size).toBe(3);
    expect(around.slice(1)).toEqual([negatives[0]!, negatives[2]!]);
    // Isolation run: near 2^53 the request's seed + 1 rounded back to the seed in a double: two choices alike.
    const top = await text(Number.MAX_SAFE_INTEGER, 3);
    expect(new Set(top).size).toBe(3);
    expect(top[0]).toEqual((await text(Number.MAX_SAFE_INTEGER))[0]!);
  });
  test("n above 16 → 400 naming n (streamed too)", async () => {
    const e = await error(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], n: 17, stream: true }));
    expect([e.status, e.param]).toEqual([400, "n"]);
  });
});

describe("completions prompts", () => {
  test("an array of prompts: one choice each, in order", async () => {
    const r = await srv.client.completions.create({ model: "tiny", prompt: ["Once upon", "hello"], max_tokens: 5, temperature: 0 });
    const one = await srv.client.completions.create({ model: "tiny", prompt: "hello", max_tokens: 5, temperature: 0 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(r.choices[1]!.text).toBe(one.choices[0]!.text);
  });
  test("token ids are the same prompt as their text", async () => {
    const ids = await tokenize("Once upon");
    const byIds = await srv.client.completions.create({ model: "tiny", prompt: ids, max_tokens: 5, temperature: 0 });
    const byText = await srv.client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 5, temperature: 0 });
    expect(byIds.choices[0]!.text).toBe(byText.choices[0]!.text);
    expect(byIds.usage!.prompt_tokens).toBe(byText.usage!.prompt_tokens);
  });
  test("token ids of a control token go through the prompt guard like text", async () => {
    // The id of <|im_end|>, read from the model (the server never tokenizes user text with control tokens).
    const [id] = (srv.ctx.engine as any).get("tiny").model.tokenize("<|im_end|>", true) as number[];
    const e = await error(srv.client.completions.create({ model: "tiny", prompt: [id!], max_tokens: 2 }));
    expect([e.status, e.code]).toEqual([400, "prompt_rejected"]);
  });
  test("echo puts the prompt before the text, streamed or not", async () => {
    const r = await srv.client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 4, temperature: 0, echo: true });
    const plain = await srv.client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 4, temperature: 0 });
    expect(r.choices[0]!.text).toBe("Once upon" + plain.choices[0]!.text);
    const stream = await srv.client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 4, temperature: 0, echo: true, stream: true });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    expect(text).toBe(r.choices[0]!.text);
  });
});

describe("embeddings", () => {
  test("dimensions shortens to unit length; too many → 400", async () => {
    const r = await srv.client.embeddings.create({ model: "tiny", input: "hello", dimensions: 16, encoding_format: "float" });
    expect(r.data[0]!.embedding).toHaveLength(16);
    expect(Math.hypot(...r.data[0]!.embedding)).toBeCloseTo(1, 5);
    const e = await error(srv.client.embeddings.create({ model: "tiny", input: "hello", dimensions: 100000 }));
    expect([e.status, e.param]).toEqual([400, "dimensions"]);
  });
  test("token-id input embeds like its text", async () => {
    const ids = await tokenize("hello world");
    const [byIds, byText] = await Promise.all([
      srv.client.embeddings.create({ model: "tiny", input: [ids], encoding_format: "float" }),
      srv.client.embeddings.create({ model: "tiny", input: "hello world", encoding_format: "float" }),
    ]);
    expect(byIds.data[0]!.embedding).toEqual(byText.data[0]!.embedding);
  });
});

describe("fields OpenAI's chat API takes and a local model has no use for", () => {
  test("stream_options.include_obfuscation, prompt_cache_key, safety_identifier, verbosity and a null response_format are accepted", async () => {
    const body = {
      model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2, seed: 1, response_format: null,
      prompt_cache_key: "k", safety_identifier: "user-1", verbosity: "low",
    };
    const plain = await post("/v1/chat/completions", body);
    expect([plain.status, plain.body.object]).toEqual([200, "chat.completion"]);
    const r = await fetch(`${srv.baseURL}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true, include_obfuscation: false } }),
    });
    expect(r.status).toBe(200);
    const events = (await r.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
    // With include_usage, every chunk before the last says usage: null; the last has no choices and the counts.
    expect(events.slice(0, -1).map((e) => e.usage)).toEqual(events.slice(0, -1).map(() => null));
    expect(events.at(-1).choices).toEqual([]);
    expect(events.at(-1).usage.completion_tokens).toBeGreaterThan(0);
    const completion = await fetch(`${srv.baseURL}/v1/completions`, {
      method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "hi", max_tokens: 2, stream: true, stream_options: { include_usage: true } }),
    });
    const chunks = (await completion.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
    expect(chunks.slice(0, -1).every((e) => e.usage === null)).toBe(true);
    expect(chunks.at(-1).usage.prompt_tokens).toBeGreaterThan(0);
  });
  test("null where OpenAI takes null (clients that default every parameter to None send them); a value for what is not done is a 400 naming it", async () => {
    const msgs = [{ role: "system", content: "s", name: null }, { role: "user", content: "hi", name: null }];
    const chat = await post("/v1/chat/completions", { model: "tiny", messages: msgs, max_tokens: 1, audio: null, web_search_options: null });
    expect([chat.status, chat.body.object]).toEqual([200, "chat.completion"]);
    for (const [field, value] of [["audio", { voice: "alloy", format: "wav" }], ["web_search_options", {}]] as const) {
      const r = await post("/v1/chat/completions", { model: "tiny", messages: msgs, max_tokens: 1, [field]: value });
      expect([r.status, r.body.error.param]).toEqual([400, field]);
    }
    const emb = await post("/v1/embeddings", { model: "tiny", input: "hi", encoding_format: null, dimensions: null });
    expect([emb.status, Array.isArray(emb.body.data[0].embedding)]).toEqual([200, true]);
    const resp = await post("/v1/responses", { model: "tiny", input: "hi", max_output_tokens: 1, prompt: null, context_management: null });
    expect([resp.status, resp.body.object]).toEqual([200, "response"]);
    const stored = await post("/v1/responses", { model: "tiny", input: "hi", prompt: { id: "pmpt_1" } });
    expect([stored.status, stored.body.error.param, stored.body.error.message]).toEqual([400, "prompt", expect.stringContaining("not supported")]);
  });
});

describe("messages for values no schema branch takes", () => {
  // zod's own message for a union with no matching branch is "Invalid input", which says nothing of what is allowed.
  test("a fifth stop string, an empty embeddings input, a hosted tool: the 400 says what is accepted", async () => {
    const m = [{ role: "user", content: "hi" }];
    for (const [path, body] of [["/v1/chat/completions", { model: "tiny", messages: m }], ["/v1/completions", { model: "tiny", prompt: "hi" }]] as const) {
      const r = await post(path, { ...body, stop: ["a", "b", "c", "d", "e"] });
      expect([r.status, r.body.error.param]).toEqual([400, "stop"]);
      expect(r.body.error.message).toContain("a list of at most 4 strings");
    }
    const e = await post("/v1/embeddings", { model: "tiny", input: [] });
    expect([e.status, e.body.error.param]).toEqual([400, "input"]);
    expect(e.body.error.message).toContain("an empty list is not");
    for (const [path, body, tool] of [
      ["/v1/chat/completions", { model: "tiny", messages: m }, { type: "web_search" }],
      ["/v1/chat/completions", { model: "tiny", messages: m }, { type: "file_search", vector_store_ids: ["x"] }],
      ["/v1/responses", { model: "tiny", input: "hi" }, { type: "web_search" }],
    ] as const) {
      const r = await post(path, { ...body, tools: [tool] });
      expect([r.status, r.body.error.param]).toEqual([400, "tools[0].type"]);
      expect(r.body.error.message).toContain("only function tools are supported");
    }
  });
});

describe("response_format json_object with a schema (llama-server's and vLLM's extension)", () => {
  // Instructor's JSON_SCHEMA mode sends it; it was a 400 "Unrecognized request argument supplied: response_format.schema".
  test("the answer is JSON of that schema; a bad schema is a 400 naming response_format.schema", async () => {
    const schema = { type: "object", properties: { a: { const: "x" } }, required: ["a"] };
    const r = await post("/v1/chat/completions", { model: "tiny", max_tokens: 30, messages: [{ role: "user", content: "hi" }], response_format: { type: "json_object", schema } });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.choices[0].message.content)).toEqual({ a: "x" });
    // An empty schema is any JSON: json_object's own answer, an object.
    const any = await post("/v1/chat/completions", { model: "tiny", max_tokens: 40, messages: [{ role: "user", content: "hi" }], response_format: { type: "json_object", schema: {} } });
    expect(any.status).toBe(200);
    if (any.body.choices[0].finish_reason === "stop") expect(typeof JSON.parse(any.body.choices[0].message.content)).toBe("object");
    expect(any.body.choices[0].message.content.trimStart().startsWith("{")).toBe(true);
    const bad = await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hi" }], response_format: { type: "json_object", schema: { type: "hiccup" } } });
    expect([bad.status, bad.body.error.param]).toEqual([400, "response_format.schema.type"]);
  });
});

describe("token-id prompts that begin with the BOS token", () => {
  // lm-evaluation-harness and other tokenizing clients send the BOS first: it was refused as a control token
  // (prompt_rejected, special_tokens), and without that refusal it would have been doubled.
  test("are taken as given: accepted, counted once, the same answer as the ids without it", async () => {
    const withBos = (await post("/tokenize", { content: "hello world", add_special: true })).body.tokens as number[];
    const ids = await tokenize("hello world");
    expect(withBos.slice(1)).toEqual(ids);
    const ask = (prompt: number[]) => post("/v1/completions", { model: "tiny", prompt, max_tokens: 4, temperature: 0 });
    const a = await ask(withBos);
    expect(a.status).toBe(200);
    expect(a.body.usage.prompt_tokens).toBe(withBos.length);
    const b = await ask(ids);
    expect(b.body.usage.prompt_tokens).toBe(withBos.length); // the engine puts the BOS first itself
    expect(a.body.choices[0].text).toBe(b.body.choices[0].text);
    // echo + logprobs (lm-eval's loglikelihood request): one prompt entry per id sent, the BOS first with no logprob.
    const scored = await post("/v1/completions", { model: "tiny", prompt: withBos, max_tokens: 1, temperature: 0, echo: true, logprobs: 1 });
    const lp = scored.body.choices[0].logprobs;
    expect(lp.tokens.length).toBe(withBos.length + 1);
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.token_logprobs.slice(1).every((x: unknown) => typeof x === "number")).toBe(true);
    expect(lp.tokens.join("")).toBe(scored.body.choices[0].text);
    // SDK run (stop 74): max_tokens 0 with echo (older lm-evaluation-harness, vLLM: "OpenAI API supports echoing the
    // prompt when max_tokens is 0") was a 400: the prompt scored, nothing generated, streamed or not.
    const only = await post("/v1/completions", { model: "tiny", prompt: withBos, max_tokens: 0, temperature: 0, echo: true, logprobs: 1 });
    expect(only.status).toBe(200);
    expect(only.body.choices[0]).toMatchObject({ text: scored.body.choices[0].text.slice(0, lp.text_offset.at(-1)), finish_reason: "length" });
    expect(only.body.choices[0].logprobs.tokens).toEqual(lp.tokens.slice(0, -1));
    expect(only.body.choices[0].logprobs.token_logprobs).toEqual(lp.token_logprobs.slice(0, -1));
    expect(only.body.usage).toMatchObject({ prompt_tokens: withBos.length, completion_tokens: 0 });
    const streamed = await srv.client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 0, echo: true, logprobs: 1, stream: true });
    let text = "", finish: string | null = null;
    for await (const c of streamed) { text += c.choices[0]?.text ?? ""; finish = c.choices[0]?.finish_reason ?? finish; }
    expect([text, finish]).toEqual(["Once upon", "length"]);
    const bare = await post("/v1/completions", { model: "tiny", prompt: "Once upon", max_tokens: 0, echo: true });
    expect([bare.status, bare.body.choices[0].text, bare.body.usage.completion_tokens]).toEqual([200, "Once upon", 0]);
    const noEcho = await post("/v1/completions", { model: "tiny", prompt: "x", max_tokens: 0 });
    expect([noEcho.status, noEcho.body.error.param]).toEqual([400, "max_tokens"]);
  });
});

// Client run: a required field not sent read "Invalid 'input': Invalid input" (a union's zod message), where OpenAI says
// which parameter is missing; stream_options without stream was taken, where OpenAI answers 400.
describe("OpenAI's words for a missing parameter and for stream_options without stream", () => {
  test("a required field not sent: 'Missing required parameter', code missing_required_parameter, naming it", async () => {
    for (const [route, param] of [["/v1/responses", "input"], ["/v1/completions", "prompt"], ["/v1/chat/completions", "messages"], ["/v1/embeddings", "input"]]) {
      const r = await post(route!, { model: "tiny" });
      expect([route, r.status, r.body.error]).toEqual([route, 400, { message: `Missing required parameter: '${param}'.`, type: "invalid_request_error", param, code: "missing_required_parameter" }]);
    }
    // One that is sent but wrong keeps its own message, which says what is taken (review: 17 prompts read "Invalid input").
    for (const prompt of [5, Array(17).fill("a"), [], [1.5]]) {
      const e = (await post("/v1/completions", { model: "tiny", prompt })).body.error;
      expect([e.param, e.message]).toEqual(["prompt", "Invalid 'prompt': prompt is a string, a list of 1-16 strings, a list of token ids, or a list of 1-16 such lists"]);
    }
  });
  test("stream_options without stream: 400 naming stream_options (streamed, it is taken)", async () => {
    for (const [route, extra] of [["/v1/chat/completions", { messages: [{ role: "user", content: "x" }] }], ["/v1/completions", { prompt: "x" }]] as const) {
      const r = await post(route, { model: "tiny", max_tokens: 1, ...extra, stream_options: { include_usage: true } });
      expect([route, r.status, r.body.error.param]).toEqual([route, 400, "stream_options"]);
      expect((await post(route, { model: "tiny", max_tokens: 1, ...extra, stream_options: null })).status).toBe(200);
    }
  });
});

// Client run (left by stop 35): a bad value's error named its parameter with dots (`messages.0.content`) and the code
// was invalid_request for every kind; OpenAI writes `messages[0].content` (param and message) and says what was wrong.
describe("a bad value's error in OpenAI's spelling", () => {
  test("array indices in brackets, in param and in the message; OpenAI's codes for the kind of fault", async () => {
    const user = (content: unknown) => ({ model: "tiny", messages: [{ role: "user", content: "hi" }, { role: "user", content }] });
    const typed = (await post("/v1/chat/completions", user({ text: "x" }))).body.error;
    expect([typed.param, typed.code, typed.message]).toEqual(["messages[1].content", "invalid_type", "Invalid type for 'messages[1].content': expected one of string, array, but got an object instead."]);
    const single = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: "5" })).body.error;
    expect(single.message).toBe("Invalid type for 'max_tokens': expected a number, but got a string instead.");
    // Client run: "expected int, but got a number"; an unknown Responses item type read "Invalid input"; an empty
    // parts list was taken; over the cap and a fifth stop string read invalid_request.
    const seed = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }], seed: 1.5 })).body.error;
    expect(seed.message).toBe("Invalid type for 'seed': expected an integer, but got a decimal number instead.");
    const item = (await post("/v1/responses", { model: "tiny", input: [{ type: "web_search_call", id: "ws_1", status: "completed" }, { role: "user", content: "x" }] })).body.error;
    expect([item.param, item.code, item.message.includes("'message'")]).toEqual(["input[0].type", "invalid_value", true]);
    const empty = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: [] }] })).body.error;
    expect([empty.param, empty.code]).toEqual(["messages[0].content", "empty_array"]);
    const cap = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 100_000 })).body.error;
    const stops = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }], stop: ["a", "b", "c", "d", "e"] })).body.error;
    expect([cap.code, stops.code]).toEqual(["invalid_value", "invalid_value"]);
    const cases: [unknown, string, string][] = [
      [{ temperature: 2.5 }, "temperature", "decimal_above_max_value"],
      // The parameter's kind, not the value's, decides (fix-attack run: 3 read integer_above_max_value).
      [{ temperature: 3 }, "temperature", "decimal_above_max_value"],
      [{ top_p: -1 }, "top_p", "decimal_below_min_value"],
      [{ n: 0 }, "n", "integer_below_min_value"],
      [{ messages: [] }, "messages", "empty_array"],
      [{ messages: [{ role: "bogus", content: "x" }] }, "messages[0].role", "invalid_value"],
      // The branch the value was meant for, pinpointed (zod's union said only "Invalid input" at the content).
      [{ messages: [{ role: "user", content: [{ type: "text", text: 5 }] }] }, "messages[0].content[0].text", "invalid_type"],
      // A key that is not a name is quoted, never read as an index.
      [{ logit_bias: { "12": 500 } }, 'logit_bias["12"]', "decimal_above_max_value"],
      [{ max_tokens: "5" }, "max_tokens", "invalid_type"],
      [{ reasoning_effort: "extreme" }, "reasoning_effort", "invalid_value"],
      [{ tools: [{ type: "function", function: { name: "f" } }, { type: "nope" }] }, "tools[1].type", "invalid_value"],
    ];
    for (const [extra, param, code] of cases) {
      const e = (await post("/v1/chat/completions", { model: "tiny", max_tokens: 1, messages: [{ role: "user", content: "x" }], ...extra as object })).body.error ?? {};
      expect([extra, e.param, e.code]).toEqual([extra, param, code]);
    }
    const unknown = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }], foo: 1 })).body.error;
    expect([unknown.param, unknown.code]).toEqual(["foo", "unknown_parameter"]);
    // zod's records skip a "__proto__" key: logit_bias {"__proto__": …} passed unchecked (red-team run, stop 72).
    for (const bias of ['{"__proto__":"zzz"}', '{"__proto__":[1,2]}', '{"__proto__":5}']) {
      const r = await fetch(`${srv.baseURL}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" },
        body: `{"model":"tiny","max_tokens":1,"messages":[{"role":"user","content":"x"}],"logit_bias":${bias}}` });
      const e = ((await r.json()) as any).error;
      expect([bias, r.status, e.param, e.code]).toEqual([bias, 400, "logit_bias", "invalid_value"]);
    }
    // A top-level name as sent, not in the path form (red-team run, stop 72: param was '["foo bar"]').
    for (const name of ["foo bar", "a.b", "0"]) {
      const odd = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }], [name]: 1 })).body.error;
      expect([odd.param, odd.message]).toEqual([name, `Unrecognized request argument supplied: ${name}`]);
    }
    const dotted = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x", "a.1": 2 }] })).body.error;
    expect([dotted.param, dotted.message]).toEqual(['messages[0]["a.1"]', 'Unrecognized request argument supplied: messages[0]["a.1"]']);
    const responses = (await post("/v1/responses", { model: "tiny", input: [{ role: "user", content: "hi" }, { role: "user", content: 5 }] })).body.error;
    expect([responses.param, responses.code]).toEqual(["input[1].content", "invalid_type"]);
    // Fix-attack run 2: a Responses message's bad role was "input[0]", invalid_request; a huge unknown key came back whole.
    const role = (await post("/v1/responses", { model: "tiny", input: [{ type: "message", role: "robot", content: "x" }] })).body.error;
    expect([role.param, role.code]).toEqual(["input[0].role", "invalid_value"]);
    const suffix = (await post("/v1/completions", { model: "tiny", prompt: "Hi", suffix: "x" })).body.error;
    expect([suffix.param, suffix.code]).toEqual(["suffix", "unsupported_parameter"]); // it read invalid_type (newcomer run)
    const choice = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }], tool_choice: "sometimes" })).body.error;
    expect([choice.param, choice.code, choice.message]).toEqual(["tool_choice", "invalid_value", "Invalid value for 'tool_choice': expected one of 'none', 'auto', 'required', an object."]);
    const huge = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }], ["k".repeat(100_000)]: 1 })).body.error;
    expect([huge.code, huge.param.length < 100, huge.message.length < 200]).toEqual(["unknown_parameter", true, true]);
    // Errors raised past validation use the same spelling (tool_call_id of an unanswered call).
    const missing = (await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }, { role: "tool", tool_call_id: "nope", content: "r" }] })).body.error;
    expect(missing.param).toBe("messages[1].tool_call_id");
  });
});
