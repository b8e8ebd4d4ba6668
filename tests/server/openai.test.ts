/** The OpenAI API through the official `openai` SDK over real HTTP, on the real engine and tiny model. */
import { describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { sdkApp } from "./sdk-app";

const srv = sdkApp();

describe("chat completions", () => {
  test("non-streaming answer with usage", async () => {
    const r = await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 8, temperature: 0 });
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0]!.message.role).toBe("assistant");
    expect(typeof r.choices[0]!.message.content).toBe("string");
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(8);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(3);
    expect(["stop", "length"]).toContain(r.choices[0]!.finish_reason);
  });

  test("same seed, same answer", async () => {
    const ask = () => srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "the answer" }], max_tokens: 12, temperature: 0.8, seed: 7 });
    expect((await ask()).choices[0]!.message.content).toBe((await ask()).choices[0]!.message.content!);
  });

  test("streaming: role first, text deltas, finish reason, usage, [DONE]", async () => {
    const stream = await srv.client.chat.completions.create({
      model: "tiny", messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }], max_tokens: 10, stream: true,
      stream_options: { include_usage: true }, temperature: 0,
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    const finish = chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]!.finish_reason;
    expect(["stop", "length"]).toContain(finish!);
    const usage = chunks.at(-1)!.usage!;
    expect(usage.completion_tokens).toBeGreaterThan(0);
    // Streaming and non-streaming produce the same text for the same greedy request.
    const full = await srv.client.chat.completions.create({
      model: "tiny", messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }], max_tokens: 10, temperature: 0,
    });
    expect(text).toBe(full.choices[0]!.message.content!);
  });

  test("json_schema output parses and matches the schema", async () => {
    const r = await srv.client.chat.completions.create({
      model: "tiny", messages: [{ role: "user", content: "give me json" }], max_tokens: 200,
      response_format: { type: "json_schema", json_schema: { name: "thing", schema: {
        type: "object", properties: { name: { type: "string", enum: ["alpha", "beta"] }, ok: { type: "boolean" } }, required: ["name", "ok"],
      } } },
    });
    const parsed = JSON.parse(r.choices[0]!.message.content!);
    expect(["alpha", "beta"]).toContain(parsed.name);
    expect(typeof parsed.ok).toBe("boolean");
  });

  test("json_object output is JSON", async () => {
    const r = await srv.client.chat.completions.create({
      model: "tiny", messages: [{ role: "user", content: "json please" }], max_tokens: 64, response_format: { type: "json_object" }, temperature: 0,
    });
    expect(r.choices[0]!.finish_reason).toBe("stop");
    expect(() => JSON.parse(r.choices[0]!.message.content!)).not.toThrow();
  });

  test("stop sequences end the text", async () => {
    const base = await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 20, temperature: 0 });
    const text = base.choices[0]!.message.content!;
    const stopAt = text.slice(3, 6);
    expect(stopAt.length).toBe(3); // greedy: the same answer every run, long enough to cut
    const r = await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 20, temperature: 0, stop: [stopAt] });
    expect(r.choices[0]!.message.content!).toBe(text.slice(0, text.indexOf(stopAt)));
    expect(r.choices[0]!.finish_reason).toBe("stop");
  });
});

describe("completions", () => {
  test("non-streaming and streaming agree", async () => {
    const full = await srv.client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
    expect(full.object).toBe("text_completion");
    expect(full.usage!.completion_tokens).toBeGreaterThan(0);
    const stream = await srv.client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 10, temperature: 0, stream: true });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    expect(text).toBe(full.choices[0]!.text);
  });
});

describe("embeddings", () => {
  test("string and array input, base64 (SDK default) and float", async () => {
    const one = await srv.client.embeddings.create({ model: "tiny", input: "hello world" });
    expect(one.data).toHaveLength(1);
    expect(one.data[0]!.embedding.length).toBe(64);
    const many = await srv.client.embeddings.create({ model: "tiny", input: ["hello world", "json value"], encoding_format: "float" });
    expect(many.data).toHaveLength(2);
    expect(many.data[0]!.embedding).toEqual(one.data[0]!.embedding.map((x) => Math.fround(x)));
    expect(many.usage.prompt_tokens).toBeGreaterThan(0);
  });
});

describe("models", () => {
  test("list and retrieve", async () => {
    const list = await srv.client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["tiny"]);
    const m = await srv.client.models.retrieve("tiny");
    expect(m.id).toBe("tiny");
    expect(m.object).toBe("model");
  });
});

describe("errors are OpenAI-shaped with the right status", () => {
  const expectError = async (p: Promise<unknown>, status: number, code?: string, param?: string) => {
    const e = await p.then(() => null, (err) => err);
    expect(e).toBeInstanceOf(OpenAI.APIError);
    expect(e.status).toBe(status);
    if (code) expect(e.code).toBe(code);
    if (param) expect(e.param).toBe(param);
    expect(typeof e.error.message).toBe("string");
    expect(e.error.message).not.toMatch(/\bat .*\.ts:\d+|node_modules|\/src\//);
  };
  test("unknown model → 404 model_not_found", () =>
    expectError(srv.client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }), 404, "model_not_found", "model"));
  test("retrieve unknown model → 404", () => expectError(srv.client.models.retrieve("nope"), 404, "model_not_found"));
  test("retrieve a 5,000-character id → 404 naming at most a model name's length of it", async () => {
    const e = await srv.client.models.retrieve("m".repeat(5000)).then(() => null, (err) => err as InstanceType<typeof OpenAI.APIError>);
    expect([e?.status, e?.code]).toEqual([404, "model_not_found"]);
    expect(e!.error as { message: string }).toMatchObject({ message: expect.stringContaining(`'${"m".repeat(256)}…'`) });
    expect(JSON.stringify(e!.error).length).toBeLessThan(600);
  });
  // Stop 72's note: `/v1/models/%zz` (not valid percent-encoding) answered 400 naming params' "/id".
  test("retrieve an id that is not valid percent-encoding → 404 naming it as sent", async () => {
    for (const id of ["%", "%zz", "a%e0%80b"]) {
      const r = await fetch(`${srv.baseURL}/v1/models/${id}`, { headers: { authorization: `Bearer ${srv.ctx.key}` } });
      expect([r.status, ((await r.json()) as { error: unknown }).error]).toEqual([404,
        { code: "model_not_found", message: `The model '${id}' does not exist or you do not have access to it.`, param: "model", type: "invalid_request_error" }]);
    }
  });
  test("out-of-range parameter → 400 naming the param", () =>
    expectError(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], temperature: 3 }), 400, undefined, "temperature"));
  test("wrong type deep inside → 400 naming the path", () =>
    expectError(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "robot" as never, content: "x" }] }), 400, undefined, "messages[0].role"));
  test("unknown field → 400 naming it, as its param", async () => {
    const p = srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], frobnicate: 1 } as never);
    await expectError(p, 400, undefined, "frobnicate");
    expect((await p.catch((e) => e)).message).toContain("frobnicate");
    // a hosted tool's options: named, as any field this server does not take
    await expectError(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], web_search_options: {} }), 400, undefined, "web_search_options");
  });
  test("fields OpenAI's chat API accepts are accepted: null metadata/store/service_tier, reasoning_effort, prediction, text modality", async () => {
    // each was a 400 (expected record, received null; Unrecognized key) for code written against OpenAI
    const messages = [{ role: "user" as const, content: "x" }];
    const r = await srv.client.chat.completions.create({
      model: "tiny", messages, max_tokens: 2, metadata: null, store: null, service_tier: null, user: null as never,
      reasoning_effort: "low", prediction: { type: "content", content: "x" }, modalities: ["text"], prompt_cache_retention: "24h",
    });
    expect(r.choices[0]!.message.role).toBe("assistant");
    await expectError(srv.client.chat.completions.create({ model: "tiny", messages, modalities: ["text", "audio"] }), 400, undefined, "modalities[1]");
    // the field the client sent is the one named (it was max_tokens)
    await expectError(srv.client.chat.completions.create({ model: "tiny", messages, max_completion_tokens: 100000 }), 400, undefined, "max_completion_tokens");
  });
  test("a media type in capitals (Application/JSON; charset=UTF-8) is JSON", async () => {
    const r = await fetch(`${srv.baseURL}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "Application/JSON; charset=UTF-8" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 1 }),
    });
    expect(r.status).toBe(200);
    const wrong = await fetch(`${srv.baseURL}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "text/plain" }, body: "{}",
    });
    expect([wrong.status, ((await wrong.json()) as { error: { code: string } }).error.code]).toEqual([400, "invalid_content_type"]);
  });
  test("prompt + max_tokens over the context → 400 context_length_exceeded", () =>
    expectError(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "word ".repeat(1500) }], max_tokens: 1000 }),
      400, "context_length_exceeded"));
  test("a prompt counted whole is refused with its exact count (no 'at least': engine/long-text.ts counts only long ones in pieces)", async () => {
    const prompt = "word ".repeat(560); // 2,800 characters: tokenized whole
    const n = (await srv.client.completions.create({ model: "tiny", prompt, max_tokens: 1 })).usage!.prompt_tokens;
    const e = await srv.client.completions.create({ model: "tiny", prompt, max_tokens: 1_000 }).then(() => null, (err) => err);
    expect([e.status, e.error.message]).toEqual([400, `This model's maximum context length is 2048 tokens. However, you requested ${n + 1_000} tokens ` +
      `(${n} in the prompt, 1000 for the completion). Please reduce the length of the prompt or max_tokens.`]);
  });
  test("no max_tokens: a prompt that leaves less than the default is answered within what the context leaves, not refused", async () => {
    // 1,700 prompt tokens of a 2,048 context: the default 512 would not fit (a 400 the client never asked for before)
    const messages = [{ role: "user" as const, content: "word ".repeat(560) }];
    const r = await srv.client.chat.completions.create({ model: "tiny", messages, temperature: 0 });
    expect(r.usage!.prompt_tokens).toBeGreaterThan(2048 - 512);
    expect(r.usage!.prompt_tokens + r.usage!.completion_tokens).toBeLessThanOrEqual(2048);
    const stream = await srv.client.chat.completions.create({ model: "tiny", messages, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
    expect(text).toBe(r.choices[0]!.message.content!);
    const c = await srv.client.completions.create({ model: "tiny", prompt: "word ".repeat(560) });
    expect(c.usage!.prompt_tokens + c.usage!.completion_tokens).toBeLessThanOrEqual(2048);
    // asked for, it is what was asked: still a 400
    await expectError(srv.client.completions.create({ model: "tiny", prompt: "word ".repeat(560), max_tokens: 512 }), 400, "context_length_exceeded");
  });
  test("max_tokens above the cap → 400", () =>
    expectError(srv.client.completions.create({ model: "tiny", prompt: "x", max_tokens: 100000 }), 400, undefined, "max_tokens"));
  test("n above the most choices → 400", () => expectError(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], n: 17 }), 400, undefined, "n"));
  test("no key → 401", () => expectError(new OpenAI({ apiKey: "apk_0000000000000000_" + "A".repeat(43), baseURL: `${srv.baseURL}/v1`, maxRetries: 0 }).models.list(), 401, "invalid_api_key"));

  test("invalid JSON → 400 invalid_json, with a request id", async () => {
    const r = await fetch(`${srv.baseURL}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: "{bad" });
    expect(r.status).toBe(400);
    expect(r.headers.get("x-request-id")).toMatch(/^req_[A-Za-z0-9_-]{22}$/);
    expect(((await r.json()) as any).error.code).toBe("invalid_json");
  });
  test("unknown route → 404 in OpenAI shape", async () => {
    const r = await fetch(`${srv.baseURL}/v1/nothing`, { headers: { authorization: `Bearer ${srv.ctx.key}` } });
    expect(r.status).toBe(404);
    expect(((await r.json()) as any).error.type).toBe("invalid_request_error");
  });
});

describe("operations routes", () => {
  test("/health is public, /ready needs a key and reports the model", async () => {
    expect((await fetch(`${srv.baseURL}/health`)).status).toBe(200);
    expect((await fetch(`${srv.baseURL}/ready`)).status).toBe(401);
    const r = await fetch(`${srv.baseURL}/ready`, { headers: { authorization: `Bearer ${srv.ctx.key}` } });
    expect(r.status).toBe(200);
    expect(((await r.json()) as any).models).toEqual(["tiny"]);
  });
  test("docs page renders offline: UI assets come from this server, spec documents the routes", async () => {
    const h = { authorization: `Bearer ${srv.ctx.key}` };
    const page = await (await fetch(`${srv.baseURL}/swagger`, { headers: h })).text();
    const srcs = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(srcs.length).toBeGreaterThan(0);
    for (const s of srcs) {
      expect(s.startsWith("/")).toBe(true); // no CDN
      const asset = await fetch(`${srv.baseURL}${s}`, { headers: h });
      expect(asset.status).toBe(200);
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
    const spec = (await (await fetch(`${srv.baseURL}/swagger/json`, { headers: h })).json()) as any;
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health"]));
    const body = spec.paths["/v1/chat/completions"].post.requestBody.content["application/json"].schema;
    expect(JSON.stringify(body)).toContain("messages");
  });
  test("docs are readable without a key (docsPublic, the default), naming no model, tokenizer or release; calls still need a key", async () => {
    const page = await fetch(`${srv.baseURL}/swagger`);
    expect(page.status).toBe(200);
    for (const s of [...(await page.text()).matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)) expect((await fetch(`${srv.baseURL}${s}`)).status).toBe(200);
    const text = await (await fetch(`${srv.baseURL}/swagger/json`)).text();
    const spec = JSON.parse(text) as any;
    const example = (route: string) => spec.paths[route].post.requestBody.content["application/json"].schema.example;
    // /ready names the models only to keys that may list them: the public spec names none (it did: the served id)
    expect(example("/v1/chat/completions")).toEqual({ model: "your-model", messages: [{ role: "user", content: "Hello!" }], max_tokens: 64 });
    expect(text).not.toContain('"tiny"');
    expect(example("/detokenize").tokens).toEqual([1, 2, 3]);
    expect(spec.info.version).toBe("1");
    expect(spec.paths["/health"].get.security).toEqual([]);
    expect(Object.keys(spec.paths["/v1/chat/completions"].post.responses)).toContain("200");
    expect((await fetch(`${srv.baseURL}/v1/models`)).status).toBe(401);
    expect((await fetch(`${srv.baseURL}/swagger/assets/..%2f..%2fv1%2fmodels`)).status).not.toBe(200);
  });
});

test("/metrics needs the admin scope and counts requests", async () => {
  const r = await fetch(`${srv.baseURL}/metrics`, { headers: { authorization: `Bearer ${srv.ctx.key}` } });
  expect(r.status).toBe(200);
  const text = await r.text();
  expect(text).toMatch(/appliance_requests_total\{method="POST",route="\/v1\/chat\/completions",status="200"\} \d+/);
  expect(text).toContain('appliance_slots{state="busy"} 0'); // nothing generating once the answers are in
});
