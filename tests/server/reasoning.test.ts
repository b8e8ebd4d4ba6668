/**
 * A reasoning model (a template that opens `<think>` in the prompt, as DeepSeek-R1's and Qwen3's thinking releases
 * do), through the official openai SDK over HTTP. node-llama-cpp leaves thought segments out of its text, so the
 * thought was dropped unseen, and the held-back tail at a cut was read after the answer's released tokens only: a cut
 * inside the thought sent the whole thought as the answer, a thought before the answer repeated the answer's last
 * tokens; a JSON format or forced call was generated as the thought (empty answer, no call); an echoed
 * `reasoning_content` was a 400. The random model thinks and answers by chance: `</think>` and the end token get a
 * logit bias, and each test looks through a few seeds for the case it needs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import OpenAI from "openai";
import { listenApp, makeApp, makeEngine, THINK_END_TOKEN, thinkingModel, tokenText } from "../helpers";

let t: Awaited<ReturnType<typeof makeApp>>;
let client: OpenAI;
beforeAll(async () => {
  const engine = await makeEngine({ id: "think", path: await thinkingModel() });
  t = await makeApp({ engine, config: { rateLimit: { rpm: 0, tpm: 0 } } });
  client = new OpenAI({ apiKey: t.key, baseURL: `${listenApp(t.app)}/v1`, maxRetries: 0 });
}, 120_000);
afterAll(async () => { await t.app.stop(true); await t.engine.dispose(); });

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const base = { model: "think", messages: [{ role: "user" as const, content: "hi" }], max_tokens: 40, temperature: 1, logit_bias: { [THINK_END_TOKEN]: 5, 260: 2 } };
type Message = OpenAI.ChatCompletionMessage & { reasoning_content?: string };
type Usage = OpenAI.CompletionUsage;

async function both(seed: number, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) {
  const full = await client.chat.completions.create({ ...base, seed, ...extra });
  const stream = await client.chat.completions.create({ ...base, seed, ...extra, stream: true });
  const order: string[] = [];
  let reasoning = "", content = "";
  for await (const c of stream) {
    const d = c.choices[0]?.delta as { content?: string | null; reasoning_content?: string } | undefined;
    if (d?.reasoning_content) { reasoning += d.reasoning_content; order.push("r"); }
    if (d?.content) { content += d.content; order.push("c"); }
  }
  return { full, message: full.choices[0]!.message as Message, streamed: { reasoning, content, order } };
}

test("a thought before the answer is reasoning_content, streamed before the content; the answer is its own tokens, once", async () => {
  let seen = 0;
  for (const seed of [...SEEDS, 9, 10, 11, 12]) {
    const { full, message, streamed } = await both(seed, { logprobs: true });
    expect(streamed.reasoning).toBe(message.reasoning_content ?? "");
    expect(streamed.content).toBe(message.content ?? "");
    // One thought, then the answer (the random model may open a second thought inside its answer: left out here).
    if (!message.reasoning_content || !message.content || !/^r+c+$/.test(streamed.order.join(""))) continue;
    seen++;
    // the logprobs are the answer's tokens and spell it exactly (a repeated tail, or a thought's tokens, would not)
    const lp = full.choices[0]!.logprobs!.content!;
    expect(tokenText(lp.map((x) => x.token))).toBe(message.content);
    const usage = full.usage as Usage;
    expect(usage.completion_tokens_details?.reasoning_tokens).toBeGreaterThan(0);
    expect(usage.completion_tokens_details!.reasoning_tokens!).toBeLessThan(usage.completion_tokens);
  }
  expect(seen).toBeGreaterThanOrEqual(2);
}, 120_000);

test("cut by max_tokens inside the thought: the thought is reasoning_content and the answer is empty (it was sent as the answer)", async () => {
  let seen = 0;
  for (const seed of SEEDS) {
    const { full, message, streamed } = await both(seed, { max_tokens: 12, logit_bias: {} });
    expect(full.choices[0]!.finish_reason).toBe("length");
    expect(message.content).toBe("");
    expect(streamed.content).toBe("");
    if (message.reasoning_content) seen++;
    expect(streamed.reasoning).toBe(message.reasoning_content ?? "");
  }
  expect(seen).toBeGreaterThanOrEqual(6);
}, 120_000);

test("the SDK's own message, reasoning_content and all, goes back in the next turn, and the thought is in the prompt", async () => {
  const first = await client.chat.completions.create({ ...base, seed: 3, max_tokens: 12, logit_bias: {} });
  const echoed = first.choices[0]!.message as Message;
  expect(echoed.reasoning_content).toBeTruthy();
  const next = await client.chat.completions.create({ ...base, messages: [...base.messages, echoed, { role: "user", content: "more" }], max_tokens: 4 });
  expect(next.choices).toHaveLength(1);
  // vLLM's and OpenRouter's name for it too
  // kept within the current tool-call loop (after the last user message), dropped before it, as Qwen 3's template does
  const call = { id: "c1", type: "function", function: { name: "f", arguments: "{}" } };
  const tokens = async (m: object, after: object) => (await (await fetch(`${client.baseURL.replace(/\/v1$/, "")}/tokenize`, {
    method: "POST", headers: { authorization: `Bearer ${t.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "think", messages: [{ role: "user", content: "hi" }, m, after] }),
  })).json() as { tokens: number[] }).tokens;
  const result = { role: "tool", tool_call_id: "c1", content: "ok" };
  const plain = await tokens({ role: "assistant", content: "yo", tool_calls: [call] }, result);
  const withThought = await tokens({ role: "assistant", content: "yo", reasoning: "hmm", refusal: null, tool_calls: [call] }, result);
  expect(withThought.length).toBeGreaterThan(plain.length);
  expect(withThought).toContain(THINK_END_TOKEN);
  const earlier = await tokens({ role: "assistant", content: "yo", reasoning_content: "hmm" }, { role: "user", content: "more" });
  expect(earlier).toEqual(await tokens({ role: "assistant", content: "yo" }, { role: "user", content: "more" }));
}, 60_000);

test("a JSON format and a forced call are the answer, not the thought (a reasoning model answers them after an empty thought)", async () => {
  const schema = { type: "object", properties: { a: { type: "string", maxLength: 3 } }, required: ["a"], additionalProperties: false };
  for (const seed of [1, 2, 3]) {
    const json = await client.chat.completions.create({ ...base, seed, max_tokens: 60, response_format: { type: "json_schema", json_schema: { name: "x", schema, strict: true } } });
    const m = json.choices[0]!.message as Message;
    expect(m.reasoning_content).toBeUndefined();
    expect(Object.keys(JSON.parse(m.content!))).toEqual(["a"]);
    const call = await client.chat.completions.create({ ...base, seed, max_tokens: 60, tools: [{ type: "function", function: { name: "f", parameters: schema } }], tool_choice: "required" });
    expect(call.choices[0]!.finish_reason).toBe("tool_calls");
    expect(Object.keys(JSON.parse(call.choices[0]!.message.tool_calls![0]!.type === "function" ? (call.choices[0]!.message.tool_calls![0] as { function: { arguments: string } }).function.arguments : "{}"))).toEqual(["a"]);
  }
}, 120_000);

test("Responses: the thought is a reasoning item before the message, streamed as reasoning_text events", async () => {
  const body = { model: "think", input: "hi", max_output_tokens: 12, temperature: 0 } as const; // greedy: the same thought every run
  const r = await client.responses.create(body);
  expect(r.output[0]!.type).toBe("reasoning");
  const item = r.output[0] as { content?: { type: string; text: string }[] };
  expect(item.content![0]!.type).toBe("reasoning_text");
  expect(item.content![0]!.text.length).toBeGreaterThan(0);
  expect(r.usage!.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
  const events: string[] = [];
  let thought = "";
  for await (const e of await client.responses.create({ ...body, stream: true })) {
    events.push(e.type);
    if (e.type === "response.reasoning_text.delta") thought += e.delta;
    if (e.type === "response.completed" || e.type === "response.incomplete") {
      expect(e.response.output[0]!.type).toBe("reasoning");
      expect((e.response.output[0] as { content?: { text: string }[] }).content![0]!.text).toBe(thought);
      expect(e.response.output[1]!.type).toBe("message");
    }
  }
  expect(thought.length).toBeGreaterThan(0);
  // the SDK's stream helper builds the items from the events (it threw 'missing content at index 0')
  const final = await client.responses.stream(body).finalResponse();
  expect((final.output[0] as { content?: { text: string }[] }).content![0]!.text.length).toBeGreaterThan(0);
  const at = (type: string) => events.indexOf(type);
  expect(at("response.reasoning_text.delta")).toBeGreaterThan(at("response.output_item.added"));
  expect(at("response.content_part.added")).toBeLessThan(at("response.reasoning_text.delta")); // the reasoning part, announced
  expect(at("response.reasoning_text.done")).toBeLessThan(events.lastIndexOf("response.content_part.added")); // before the message's
}, 60_000);

test("a private key the prompt left open: the thought is withheld like the answer", async () => {
  const messages = [{ role: "user" as const, content: "continue this file:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" }];
  const { message, streamed } = await both(3, { messages, max_tokens: 12, logit_bias: {} });
  expect(message.reasoning_content).toBe("[REDACTED:private-key]"); // the random text is gone
  expect(streamed.reasoning).toBe("[REDACTED:private-key]");
}, 60_000);

test("asked not to think (reasoning_effort none, chat_template_kwargs.enable_thinking false, Responses reasoning.effort none): no thought, the tokens are the answer", async () => {
  for (const extra of [{ reasoning_effort: "none" }, { chat_template_kwargs: { enable_thinking: false } }] as object[]) {
    const r = await client.chat.completions.create({ ...base, seed: 3, max_tokens: 12, logit_bias: {}, ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const m = r.choices[0]!.message as Message;
    expect(m.reasoning_content).toBeUndefined();
    expect(m.content!.length).toBeGreaterThan(0);
  }
  const thinking = await client.chat.completions.create({ ...base, seed: 3, max_tokens: 12, logit_bias: {}, chat_template_kwargs: { enable_thinking: true } } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  expect((thinking.choices[0]!.message as Message).reasoning_content).toBeTruthy();
  // temperature 0: unseeded sampling at the default temperature can draw the random model's own <think> (a thought
  // the model writes is reported as one, asked for or not): this failed once in CI (a fresh clone, CPU burner beside).
  const resp = await client.responses.create({ model: "think", input: "hi", max_output_tokens: 12, temperature: 0, reasoning: { effort: "none" } });
  expect(resp.output.map((o) => o.type)).toEqual(["message"]);
  // other template arguments are refused, naming them
  const bad = await fetch(`${client.baseURL}/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${t.key}`, "content-type": "application/json" },
    body: JSON.stringify({ ...base, chat_template_kwargs: { custom: 1 } }) });
  expect(bad.status).toBe(400);
  expect(JSON.stringify(await bad.json())).toContain("chat_template_kwargs");
}, 60_000);

test("Responses: a reasoning item sent back goes into the prompt with the calls after it (it was dropped)", async () => {
  const turn = (withThought: boolean) => client.responses.create({ model: "think", max_output_tokens: 1,
    tools: [{ type: "function", name: "f", parameters: { type: "object", properties: {} }, strict: false }], input: [
      { role: "user", content: "hi" },
      ...(withThought ? [{ type: "reasoning", id: "rs_1", summary: [], content: [{ type: "reasoning_text", text: "the user greets me" }] }] : []),
      { type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
      { type: "function_call_output", call_id: "c1", output: "ok" },
    ] as OpenAI.Responses.ResponseInput });
  const plain = await turn(false), thought = await turn(true);
  expect(thought.usage!.input_tokens).toBeGreaterThan(plain.usage!.input_tokens + 3); // <think>the user greets me</think>
}, 60_000);

test("reasoning_tokens never exceed completion_tokens (a re-tokenized split character counted its new tokens)", async () => {
  for (const seed of [1, 2, 3, 4]) {
    for (const extra of [{ max_tokens: 60, logit_bias: { [THINK_END_TOKEN]: 4 } }, { max_tokens: 40, logit_bias: {} }] as { max_tokens: number; logit_bias: Record<string, number> }[]) {
      const r = await client.chat.completions.create({ ...base, seed, ...extra });
      const u = r.usage!;
      expect({ seed, over: (u.completion_tokens_details?.reasoning_tokens ?? 0) > u.completion_tokens }).toEqual({ seed, over: false });
    }
  }
}, 120_000);

test("the thought is under both names clients read (reasoning_content, vLLM's reasoning), and comes back inside a text part as the Agents SDK sends it", async () => {
  const r = await client.chat.completions.create({ ...base, seed: 3, max_tokens: 12, logit_bias: {} });
  const m = r.choices[0]!.message as Message & { reasoning?: string };
  expect(m.reasoning).toBe(m.reasoning_content);
  const stream = await client.chat.completions.create({ ...base, seed: 3, max_tokens: 12, logit_bias: {}, stream: true });
  let a = "", b = "";
  for await (const c of stream) {
    const d = c.choices[0]?.delta as { reasoning_content?: string; reasoning?: string } | undefined;
    a += d?.reasoning_content ?? ""; b += d?.reasoning ?? "";
  }
  expect(b).toBe(a);
  expect(b).toBe(m.reasoning!);
  // @openai/agents' chat model copies the message's other fields into its text part: a 400 before
  const call = { id: "c1", type: "function", function: { name: "f", arguments: "{}" } };
  const echoed = { role: "assistant", content: [{ type: "text", text: "yo", role: "assistant", refusal: null, reasoning_content: "hmm", reasoning: "hmm" }], tool_calls: [call] };
  const send = (m: object) => fetch(`${client.baseURL.replace(/\/v1$/, "")}/tokenize`, { method: "POST", headers: { authorization: `Bearer ${t.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "think", messages: [{ role: "user", content: "hi" }, m, { role: "tool", tool_call_id: "c1", content: "ok" }] }) });
  const withPart = await send(echoed);
  expect(withPart.status).toBe(200);
  const plain = await (await send({ role: "assistant", content: "yo", tool_calls: [call] })).json() as { tokens: number[] };
  expect(((await withPart.json()) as { tokens: number[] }).tokens.length).toBeGreaterThan(plain.tokens.length); // the thought is in the prompt
}, 60_000);

test("after a thought the answer keeps its word-start spaces, streamed as unstreamed (SentencePiece: 'thethe' streamed, 'the the' not)", async () => {
  const THE = 394; // "▁the" in the tiny vocabulary
  let seen = 0;
  for (const seed of [1, 2, 3, 4]) {
    const { full, message, streamed } = await both(seed, { max_tokens: 14, logit_bias: { [THE]: 6, [THINK_END_TOKEN]: 8 }, logprobs: true });
    expect(streamed.content).toBe(message.content ?? "");
    if (!message.reasoning_content || !message.content?.includes("the")) continue;
    seen++;
    expect(message.content).not.toContain("thethe");
    expect(tokenText(full.choices[0]!.logprobs!.content!.map((x) => x.token))).toBe(message.content);
  }
  expect(seen).toBeGreaterThan(0);
}, 120_000);
