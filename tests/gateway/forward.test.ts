/**
 * Gateway mode against a real upstream: a second appliance (the compiled binary
 * on the tiny model) serves "tiny", and a gateway with no local model fronts it.
 * The official openai SDK talks to the gateway, as a client would.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import OpenAI from "openai";
import type { BinaryServer } from "../conformance/binary-server";
import { until } from "../helpers";
import { startGatewayOverBinary, stopGatewayOverBinary, type GatewayApp } from "./gateway-helpers";

let up: BinaryServer;
let gw: GatewayApp;
let client: OpenAI;

beforeAll(async () => ({ up, gw, client } = await startGatewayOverBinary()));
afterAll(async () => expect(await stopGatewayOverBinary(up, gw)).toBe(0));

const user = (content: string) => [{ role: "user" as const, content }];

describe("forwarding to a real upstream", () => {
  test("GET /v1/models lists the upstream model; /ready is ready with no local model", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => [m.id, m.owned_by])).toEqual([["tiny", "upstream"]]);
    expect((await client.models.retrieve("tiny")).id).toBe("tiny");
    const ready = await fetch(`${gw.baseURL}/ready`, { headers: { authorization: `Bearer ${gw.key}` } });
    expect(ready.status).toBe(200);
  });

  test("chat: one answer and a stream, with usage; the audit line names the upstream", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: user("hello"), max_tokens: 6, seed: 1 });
    expect(r.model).toBe("tiny");
    expect(r.choices[0]!.message.role).toBe("assistant");
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    const stream = await client.chat.completions.create({ model: "tiny", messages: user("hello"), max_tokens: 6, seed: 1, stream: true, stream_options: { include_usage: true } });
    let text = "", finish: string | null = null, usage = 0;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? "";
      finish = c.choices[0]?.finish_reason ?? finish;
      usage = c.usage?.completion_tokens ?? usage;
    }
    expect(finish).toBe(r.choices[0]!.finish_reason);
    expect(text).toBe(r.choices[0]!.message.content!); // same seed, same model: the stream spells the same answer
    expect(usage).toBe(r.usage!.completion_tokens);
    // Records are written just after each response ends: poll (with a deadline) rather than race them.
    const chatRecords = () => fs.readFileSync(gw.auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((a) => a.route === "POST /v1/chat/completions");
    const chats = await until(() => (chatRecords().length >= 2 ? chatRecords() : undefined), 30_000, "2 chat audit records");
    expect(chats).toHaveLength(2);
    for (const a of chats) {
      expect(a.status).toBe(200);
      expect(a.decisions).toContain(`upstream:${up.baseURL}/v1`);
      expect(a.completionTokens).toBe(r.usage!.completion_tokens);
    }
  });

  test("a stream without include_usage gets no usage chunk (the gateway asked the upstream for it anyway)", async () => {
    const stream = await client.chat.completions.create({ model: "tiny", messages: user("hi"), max_tokens: 3, stream: true });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.some((c) => c.usage)).toBe(false);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).not.toBeNull();
  });

  test("completions: one answer and a stream", async () => {
    const r = await client.completions.create({ model: "tiny", prompt: "once upon", max_tokens: 5, seed: 3 });
    expect(r.choices[0]!.text.length).toBeGreaterThan(0);
    const stream = await client.completions.create({ model: "tiny", prompt: "once upon", max_tokens: 5, seed: 3, stream: true });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    expect(text).toBe(r.choices[0]!.text);
  });

  test("embeddings: the upstream's vectors, unit length", async () => {
    const r = await client.embeddings.create({ model: "tiny", input: ["alpha", "beta"] });
    expect(r.data).toHaveLength(2);
    const norm = Math.hypot(...r.data[0]!.embedding);
    expect(norm).toBeCloseTo(1, 3);
    expect(r.usage.prompt_tokens).toBeGreaterThan(0);
  });

  test("Responses API: one answer forwarded", async () => {
    const r = await client.responses.create({ model: "tiny", input: "hello", max_output_tokens: 8 });
    expect(r.model).toBe("tiny");
    if (r.status !== "completed") expect(r.incomplete_details?.reason).toBe("max_output_tokens"); // 8 tokens may run out; never content_filter
    expect(typeof r.output_text).toBe("string");
    expect(r.usage!.output_tokens).toBeGreaterThan(0);
    // Streamed: stream-upstream.test.ts.
  });

  test("the upstream's own 4xx reaches the client in OpenAI's shape", async () => {
    const err = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x".repeat(20_000) }], max_tokens: 4 })
      .catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe("context_length_exceeded");
  });

  test("a model nobody serves is a 404 from the gateway itself", async () => {
    const err = await client.chat.completions.create({ model: "nope", messages: user("x") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
  });
});

// A second fix-attack run: through the gateway stream_options without stream went to the upstream as sent (a 200),
// where the local model answers 400, as OpenAI does.
test("stream_options without stream is a 400 at the gateway too, on chat, completions and Responses (nothing reaches the upstream)", async () => {
  const refusals = () => up.log().match(/"status":400/g)?.length ?? 0, answered = () => up.log().match(/"route":"POST \/v1\/chat\/completions","status":200/g)?.length ?? 0;
  // The upstream writes a request's line after its response: an earlier test's 400 (the context-length one) was
  // counted here once it came in late (CI with a CPU burner beside). A request of our own and its line first.
  const reached = async () => {
    const before = answered();
    await client.chat.completions.create({ model: "tiny", messages: user("hi"), max_tokens: 1 });
    await until(() => answered() > before || undefined);
  };
  await reached();
  const refusedBefore = refusals();
  for (const [route, body] of [["chat/completions", { messages: user("hi"), max_tokens: 1, stream_options: { include_usage: true } }],
    ["completions", { prompt: "hi", max_tokens: 1, stream_options: { include_usage: true } }],
    ["responses", { input: "hi", max_output_tokens: 1, stream_options: { include_obfuscation: true } }]] as const) {
    const r = await fetch(`${gw.baseURL}/v1/${route}`, { method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", ...body }) });
    expect([route, r.status, ((await r.json()) as { error: { param: string } }).error.param]).toEqual([route, 400, "stream_options"]);
  }
  // A request that does reach it, and its log line: the upstream's log is then written past the three above
  await reached();
  expect(refusals()).toBe(refusedBefore);
});
