/**
 * This round's fidelity fixes, the way a user meets them: the compiled binary, called through the official `openai`
 * SDK (create and the stream helper). The in-process tests beside the code hold the wider sweeps
 * (tests/server/stop-strings.test.ts, chat-end-tail.test.ts, parameters.test.ts, responses.test.ts,
 * fidelity.test.ts); each case here failed against a binary built before the fixes (4302e33; the zod one at 8f6201b; the two unions at 21ea463; prompt reuse at 1b17cbd; the parts that must all hold at cfbb08c; the default max_tokens, null fields and items: false at 3917e39).
 */
import { describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
import { sdkBinary } from "./binary-server";

const srv = sdkBinary();

const error = (p: Promise<unknown>) => p.then(() => { throw new Error("expected an error"); }, (e) => e as InstanceType<typeof OpenAI.APIError>);

/** A space and the word after it, or a word and the space after it, from the answer: the stops that lost their space. */
const spaced = (text: string) => [...text.matchAll(/ \p{L}{1,4}|\p{L}{1,4} /gu)].map((m) => m[0]);

describe("stop strings: the answer with a stop is the same seed's answer without it, cut before the stop", () => {
  test("chat, created and streamed", async () => {
    let tried = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const base = { model: "tiny", messages: [{ role: "user" as const, content: `hi ${seed}` }], max_tokens: 12, seed };
      const full = (await srv.client.chat.completions.create(base)).choices[0]!.message.content!;
      const stop = spaced(full)[0];
      if (stop === undefined) continue;
      tried++;
      const want = full.slice(0, full.indexOf(stop));
      const got = await srv.client.chat.completions.create({ ...base, stop: [stop] });
      const streamed = await srv.client.chat.completions.stream({ ...base, stop: [stop] }).finalChatCompletion();
      expect([got.choices[0]!.message.content, got.choices[0]!.finish_reason]).toEqual([want, "stop"]);
      expect(streamed.choices[0]!.message.content ?? "").toBe(want);
    }
    expect(tried).toBeGreaterThan(4);
  });
  test("completions, created and streamed", async () => {
    let tried = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const base = { model: "tiny", prompt: `a ${seed}`, max_tokens: 12, seed };
      const full = (await srv.client.completions.create(base)).choices[0]!.text;
      const stop = spaced(full)[0];
      if (stop === undefined) continue;
      tried++;
      const want = full.slice(0, full.indexOf(stop));
      const got = await srv.client.completions.create({ ...base, stop: [stop] });
      let streamed = "";
      for await (const c of await srv.client.completions.create({ ...base, stop: [stop], stream: true })) streamed += c.choices[0]?.text ?? "";
      expect([got.choices[0]!.text, got.choices[0]!.finish_reason]).toEqual([want, "stop"]);
      expect(streamed).toBe(want);
    }
    expect(tried).toBeGreaterThan(4);
  });
});

test("chat: an end token right after a split character's byte: streamed and created answers are the same", async () => {
  const bodies = [
    { messages: [{ role: "user" as const, content: "你好，世界" }], seed: 51682, temperature: 0.7, max_tokens: 16 },
    { messages: [{ role: "user" as const, content: [{ type: "text" as const, text: "日本語で答えて" }, { type: "text" as const, text: '{"json": true}' }], name: "bob" }], seed: 796, temperature: 1, max_tokens: 8 },
  ];
  let held = 0;
  for (const b of bodies) {
    const got = (await srv.client.chat.completions.create({ model: "tiny", ...b })).choices[0]!;
    const streamed = await srv.client.chat.completions.stream({ model: "tiny", ...b }).finalChatCompletion();
    expect(streamed.choices[0]!.message.content).toBe(got.message.content);
    if (got.finish_reason === "stop" && got.message.content!.endsWith("\uFFFD")) held++;
  }
  expect(held).toBeGreaterThan(0); // the case really came up
});

test("chat takes the fields OpenAI's chat API takes; with include_usage every chunk before the usage chunk says usage: null", async () => {
  const r = await srv.client.chat.completions.create({
    model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2, response_format: null,
    prompt_cache_key: "k", safety_identifier: "u1", verbosity: "low",
  } as unknown as OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming);
  expect(r.object).toBe("chat.completion");
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  const stream = await srv.client.chat.completions.create({
    // Seeded: sampled freely, the tiny model ends at its first token now and then and writes nothing (0 tokens).
    model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2, stream: true, seed: 1,
    stream_options: { include_usage: true, include_obfuscation: false },
  } as OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming);
  for await (const c of stream) chunks.push(c);
  expect(chunks.slice(0, -1).map((c) => c.usage)).toEqual(chunks.slice(0, -1).map(() => null));
  expect(chunks.at(-1)!.usage!.completion_tokens).toBeGreaterThan(0);
});

test("responses: refusals name the fields the client sent; json_schema: a $ref to nothing is a 400 naming it", async () => {
  const long = await error(srv.client.responses.create({ model: "tiny", input: "word ".repeat(3000), max_output_tokens: 8 }));
  expect([long.status, long.param]).toEqual([400, "input"]);
  const schema = await error(srv.client.responses.create({ model: "tiny", input: "x", text: { format: { type: "json_schema", name: "s", schema: { type: "nope" } } } }));
  expect(schema.param).toStartWith("text.format.schema");
  const ref = await error(srv.client.chat.completions.create({
    model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 4,
    response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "object", properties: { a: { $ref: "#/nope" } } } } },
  }));
  expect([ref.status, ref.param]).toEqual([400, "response_format.json_schema.schema.properties.a.$ref"]);
});

test("json_schema from the SDK's own zod helper (anyOf for a nullable object and a union) is what parse() accepts", async () => {
  // node-llama-cpp generated null for anyOf: the list's items came back null and the SDK's zod parse threw.
  const Inner = z.object({ b: z.boolean() });
  const format = zodResponseFormat(z.object({ inner: Inner.nullable(), list: z.array(z.union([Inner, z.number().int()])).min(1).max(3) }), "out");
  for (const seed of [1, 2]) {
    const r = await srv.client.chat.completions.parse({ model: "tiny", messages: [{ role: "user", content: "fill it" }], max_tokens: 200, seed, response_format: format });
    expect(r.choices[0]!.finish_reason).toBe("stop");
    const parsed = r.choices[0]!.message.parsed!;
    expect(parsed.list.length).toBeGreaterThan(0);
    expect(parsed.list.every((x) => typeof x === "number" || typeof x.b === "boolean")).toBe(true);
  }
});

test("json_schema as Pydantic v1 and OpenAPI write it: #/definitions refs, allOf of a base and a union of refs, a tuple, an object const", async () => {
  // Before: the draft-07 tuple was a 400; without it, the refs came back as "any JSON" and the base's id was dropped.
  const schema = {
    definitions: { A: { type: "object", properties: { x: { type: "integer" } }, required: ["x"] }, B: { type: "object", properties: { y: { type: "boolean" } }, required: ["y"] } },
    allOf: [
      { type: "object", required: ["id", "pair"], properties: { id: { type: "integer" }, pair: { type: "array", items: [{ type: "boolean" }, { const: { k: 1 } }], additionalItems: false } } },
      { anyOf: [{ $ref: "#/definitions/A" }, { $ref: "#/definitions/B" }] },
    ],
  };
  const r = await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "fill it" }], max_tokens: 300, seed: 1,
    response_format: { type: "json_schema", json_schema: { name: "rec", schema } } });
  expect(r.choices[0]!.finish_reason).toBe("stop");
  const v = JSON.parse(r.choices[0]!.message.content!) as { id?: unknown; pair?: unknown[]; x?: unknown; y?: unknown };
  expect({
    id: Number.isSafeInteger(v.id), pair: v.pair?.length === 2 && typeof v.pair[0] === "boolean" && JSON.stringify(v.pair[1]) === '{"k":1}',
    branch: Number.isSafeInteger(v.x) || typeof v.y === "boolean",
  }).toEqual({ id: true, pair: true, branch: true });
});

test("json_schema: an allOf of two unions (a branch of each must hold) is answered with a branch of each", async () => {
  // Before (21ea463): only the last union was generated, so answers held c or d and neither a nor b.
  const obj = (k: string, type: Record<string, unknown>) => ({ type: "object", properties: { [k]: type }, required: [k] });
  const schema = {
    allOf: [{ anyOf: [obj("a", { type: "string", maxLength: 8 }), obj("b", { type: "integer" })] }, { anyOf: [obj("c", { type: "boolean" }), obj("d", { type: "null" })] }],
  };
  for (const seed of [1, 2]) {
    const r = await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "fill it" }], max_tokens: 300, seed,
      response_format: { type: "json_schema", json_schema: { name: "both", schema } } });
    expect(r.choices[0]!.finish_reason).toBe("stop");
    const v = JSON.parse(r.choices[0]!.message.content!) as Record<string, unknown>;
    expect({ seed, first: typeof v.a === "string" || Number.isSafeInteger(v.b), second: typeof v.c === "boolean" || (Object.hasOwn(v, "d") && v.d === null) })
      .toEqual({ seed, first: true, second: true });
  }
});

test("json_schema: parts that must all hold allow only what every part allows (an enum of objects beside a oneOf, a property in two allOf parts)", async () => {
  // Before (cfbb08c): the enum's branches replaced the oneOf and the second allOf part's property the first's, so
  // answers held other n than 3 and "gh".
  const schema = {
    type: "object", required: ["pick", "word"], additionalProperties: false,
    properties: {
      pick: { oneOf: [{ type: "object", properties: { n: { const: 3 } }, required: ["n"] }], enum: [0, 1, 2, 3, 4, 5, 6, 7].map((n) => ({ n })) },
      word: { type: "string" },
    },
    allOf: [{ properties: { word: { enum: ["ab", "cd", "ef"] } } }, { properties: { word: { enum: ["cd", "gh"] } } }],
  };
  const answers: unknown[] = [];
  for (const seed of [1, 2, 3]) {
    const r = await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "pick" }], max_tokens: 60, seed, temperature: 1,
      response_format: { type: "json_schema", json_schema: { name: "pick", schema } } });
    answers.push(JSON.parse(r.choices[0]!.message.content!));
  }
  expect(answers).toEqual([1, 2, 3].map(() => ({ pick: { n: 3 }, word: "cd" })));
});

test("no max_tokens near the context's end is answered, not refused; null and reasoning fields OpenAI takes are taken; items: false is []", async () => {
  // Before (3917e39): a 400 context_length_exceeded for the server's own default 512; 400s for metadata: null and
  // reasoning_effort; [null, …] for items: false.
  const messages = [{ role: "user" as const, content: "word ".repeat(560) }];
  const r = await srv.client.chat.completions.create({ model: "tiny", messages, seed: 1, metadata: null, store: null, reasoning_effort: "low" });
  expect(r.usage!.prompt_tokens).toBeGreaterThan(2048 - 512);
  expect(r.usage!.prompt_tokens + r.usage!.completion_tokens).toBeLessThanOrEqual(2048);
  const schema = { type: "object", required: ["a"], additionalProperties: false, properties: { a: { type: "array", items: false } } };
  for (const seed of [1, 2]) {
    const j = await srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 30, seed, temperature: 1,
      response_format: { type: "json_schema", json_schema: { name: "empty", schema } } });
    expect(JSON.parse(j.choices[0]!.message.content!)).toEqual({ a: [] });
  }
});

describe("prompt reuse (engine/sequence-pool.ts): a conversation's next turn evaluates only the new turn", () => {
  test("created and streamed, usage.prompt_tokens_details.cached_tokens says how much was reused", async () => {
    const system = { role: "system" as const, content: "You keep the minutes of a small rowing club on the river, its boats, its races and its " +
      "members over the years. Answer in one sentence, with the date of the meeting, the boat, the crew and the weather that day." };
    const first = await srv.client.chat.completions.create({ model: "tiny", messages: [system, { role: "user", content: "who rowed first" }], max_tokens: 6, temperature: 0 });
    const history = [system, { role: "user" as const, content: "who rowed first" }, first.choices[0]!.message];
    const next = await srv.client.chat.completions.create({ model: "tiny", messages: [...history, { role: "user", content: "and who steered" }], max_tokens: 6, temperature: 0 });
    // The first turn's prompt (the system turn and the question) is not evaluated again, but for the last 64 tokens of
    // the new prompt (flash attention's tile: sequence-pool.ts).
    expect(first.usage!.prompt_tokens).toBeGreaterThan(64);
    expect(next.usage!.prompt_tokens_details!.cached_tokens!).toBe(next.usage!.prompt_tokens - 64);
    const streamed = await srv.client.chat.completions.stream({ model: "tiny", messages: [...history, { role: "user", content: "and who steered" }], max_tokens: 6,
      temperature: 0, stream_options: { include_usage: true } }).finalChatCompletion();
    expect(streamed.usage!.prompt_tokens_details!.cached_tokens).toBe(next.usage!.prompt_tokens - 64);
    expect(streamed.choices[0]!.message.content).toBe(next.choices[0]!.message.content);
  });
});
