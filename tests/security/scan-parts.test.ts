/**
 * A choice's text and its tool calls' arguments are scanned apart, each by a response filter of its own
 * (src/guards/scan-parts.ts). They were joined by a separator and scanned through one filter: a text ending in
 * "pwd=" took the separator and the call's arguments as its password, the redaction swallowed the separator, and
 * the calls were dropped with finish_reason content_filter (over-redaction). Seen through the gateway over an
 * upstream that answers exactly what the test gives it (the local model cannot be made to write text and a call).
 */
import { afterEach, expect, test } from "bun:test";
import OpenAI from "openai";
import { chatChunk, recordingUpstream, sseChunks, startGateway } from "../gateway/gateway-helpers";

const cleanup: (() => unknown)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

const ARGS = JSON.stringify({ path: "notes.txt" });
const KEY = "AKIAIOSFODNN7EXAMPLE";

async function gateway(answer: (path: string) => Response, action: "redact" | "block" = "redact") {
  const up = recordingUpstream((_req, s) => (s.path.endsWith("/models") ? Response.json({ object: "list", data: [] }) : answer(s.path)));
  cleanup.push(() => up.stop());
  const gw = await startGateway({ upstreams: [{ url: up.url, models: ["m"] }], gateway: { retries: 0, healthIntervalMs: 0 }, responseScan: { action } } as never);
  cleanup.push(() => gw.close());
  return new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
}

const chatAnswer = (content: string, args: string) => Response.json({
  id: "x", object: "chat.completion", created: 1, model: "m",
  choices: [{ index: 0, finish_reason: "tool_calls", message: { role: "assistant", content,
    tool_calls: [{ id: "call_1", type: "function", function: { name: "read", arguments: args } }] } }],
  usage: { prompt_tokens: 3, completion_tokens: 9, total_tokens: 12 },
});
const chatStream = (content: string, args: string) => new Response(sseChunks([
  chatChunk({ role: "assistant", content }),
  chatChunk({ tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "read", arguments: args.slice(0, 7) } }] }),
  chatChunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(7) } }] }),
  chatChunk({}, "tool_calls"), "[DONE]"], 9), { headers: { "content-type": "text/event-stream" } });
const responsesAnswer = (text: string, args: string) => Response.json({
  id: "resp_1", object: "response", created_at: 1, model: "m", status: "completed",
  output: [
    { type: "message", id: "msg_1", role: "assistant", status: "completed", content: [{ type: "output_text", text, annotations: [] }] },
    { type: "function_call", id: "fc_1", call_id: "call_1", name: "read", arguments: args, status: "completed" },
  ],
  usage: { input_tokens: 3, output_tokens: 9, total_tokens: 12 },
});
const ask = { model: "m", messages: [{ role: "user" as const, content: "read it" }] };
const fn = (c: OpenAI.Chat.Completions.ChatCompletionMessageToolCall | undefined) => (c as { function: { arguments: string } } | undefined)?.function;

test("non-streamed chat: text ending in pwd= keeps its tool call (it took the call as its password before)", async () => {
  const r = await (await gateway(() => chatAnswer("set pwd=", ARGS))).chat.completions.create(ask);
  expect([r.choices[0]!.message.content, r.choices[0]!.finish_reason, fn(r.choices[0]!.message.tool_calls?.[0])?.arguments])
    .toEqual(["set pwd=", "tool_calls", ARGS]);
});

test("streamed chat: text ending in pwd= keeps its tool call", async () => {
  const done = await (await gateway(() => chatStream("set pwd=", ARGS))).chat.completions.stream(ask).finalChatCompletion();
  expect([done.choices[0]!.message.content, done.choices[0]!.finish_reason, fn(done.choices[0]!.message.tool_calls?.[0])?.arguments])
    .toEqual(["set pwd=", "tool_calls", ARGS]);
});

test("Responses API: output text ending in pwd= keeps the function call", async () => {
  const r = await (await gateway(() => responsesAnswer("set pwd=", ARGS))).responses.create({ model: "m", input: "read it" });
  expect(r.status).toBe("completed");
  expect(r.output_text).toBe("set pwd=");
  expect((r.output.find((o) => o.type === "function_call") as { arguments: string }).arguments).toBe(ARGS);
});

test("a secret is still redacted in the text and in the arguments, each where it is", async () => {
  const args = JSON.stringify({ key: KEY });
  const r = await (await gateway(() => chatAnswer(`my key ${KEY}`, args))).chat.completions.create(ask);
  expect(r.choices[0]!.message.content).toBe("my key [REDACTED:aws-access-token]");
  expect(fn(r.choices[0]!.message.tool_calls?.[0])?.arguments).toBe(JSON.stringify({ key: "[REDACTED:aws-access-token]" }));
  const s = await (await gateway(() => chatStream(`my key ${KEY}`, args))).chat.completions.stream(ask).finalChatCompletion();
  expect(s.choices[0]!.message.content).toBe("my key [REDACTED:aws-access-token]");
  expect(fn(s.choices[0]!.message.tool_calls?.[0])?.arguments).toBe(JSON.stringify({ key: "[REDACTED:aws-access-token]" }));
});

test("with action block, a secret only in the arguments still drops the calls and ends content_filter", async () => {
  const args = JSON.stringify({ key: KEY });
  const r = await (await gateway(() => chatAnswer("here", args), "block")).chat.completions.create(ask);
  expect([r.choices[0]!.message.content, r.choices[0]!.finish_reason, r.choices[0]!.message.tool_calls]).toEqual(["", "content_filter", undefined]);
  const s = await (await gateway(() => chatStream("here", args), "block")).chat.completions.stream(ask).finalChatCompletion();
  expect(s.choices[0]!.finish_reason).toBe("content_filter");
  expect(s.choices[0]!.message.tool_calls ?? []).toEqual([]);
  expect(JSON.stringify(s)).not.toContain(KEY);
});

test("Responses API: a private key split across two output_text parts (clients join them) does not get out (review)", async () => {
  const answer = () => Response.json({
    id: "resp_1", object: "response", created_at: 1, model: "m", status: "completed",
    output: [{ type: "message", id: "msg_1", role: "assistant", status: "completed", content: [
      { type: "output_text", text: "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfV", annotations: [] },
      { type: "output_text", text: "LPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----", annotations: [] }] }],
    usage: { input_tokens: 3, output_tokens: 9, total_tokens: 12 },
  });
  const r = await (await gateway(answer)).responses.create({ model: "m", input: "key?" });
  // Each part through a filter of its own let the second part's key body and END line out whole.
  expect(JSON.stringify(r)).not.toContain("LPHCozMx");
  expect(JSON.stringify(r)).not.toContain("MIIEow");
});

test("non-streamed upstream chat: logprobs that spell a redacted secret are dropped; reasoning, refusal and function_call arguments are scanned (review)", async () => {
  const pieces = ["my", " key", " AKIA", "IOSF", "ODNN", "7EXAMPLE"];
  const answer = () => Response.json({
    id: "x", object: "chat.completion", created: 1, model: "m",
    choices: [{ index: 0, finish_reason: "stop",
      message: { role: "assistant", content: pieces.join(""), refusal: `no: ${KEY}`, reasoning_content: `think ${KEY}`, function_call: { name: "f", arguments: JSON.stringify({ k: KEY }) } },
      logprobs: { content: pieces.map((token) => ({ token, logprob: -0.1, bytes: null, top_logprobs: [] })), refusal: null } },
      { index: 1, finish_reason: "stop", message: { role: "assistant", content: "nothing here" },
        logprobs: { content: [{ token: "nothing", logprob: -0.1, bytes: null, top_logprobs: [] }], refusal: null } }],
    usage: { prompt_tokens: 3, completion_tokens: 9, total_tokens: 12 },
  });
  const r = await (await gateway(answer)).chat.completions.create({ ...ask, logprobs: true, n: 2 });
  expect(JSON.stringify(r)).not.toContain("IOSF");
  const m = r.choices[0]!.message as unknown as Record<string, unknown>;
  expect([m.content, m.refusal, m.reasoning_content, (m.function_call as { arguments: string }).arguments]).toEqual([
    "my key [REDACTED:aws-access-token]", "no: [REDACTED:aws-access-token]", "think [REDACTED:aws-access-token]", JSON.stringify({ k: "[REDACTED:aws-access-token]" })]);
  expect(r.choices[0]!.logprobs).toBeNull();
  // A choice the scan did not change keeps its logprobs.
  expect(r.choices[1]!.logprobs?.content?.[0]?.token).toBe("nothing");
});

test("Responses API from an upstream: a reasoning item's summary text is scanned (review)", async () => {
  const answer = () => Response.json({
    id: "resp_1", object: "response", created_at: 1, model: "m", status: "completed",
    output: [
      { type: "reasoning", id: "rs_1", summary: [{ type: "summary_text", text: `the key is ${KEY}` }] },
      { type: "message", id: "msg_1", role: "assistant", status: "completed", content: [{ type: "output_text", text: "done", annotations: [] }] }],
    usage: { input_tokens: 3, output_tokens: 9, total_tokens: 12 },
  });
  const r = await (await gateway(answer)).responses.create({ model: "m", input: "key?" });
  expect(JSON.stringify(r)).not.toContain(KEY);
  expect((r.output[0] as { summary: { text: string }[] }).summary[0]!.text).toBe("the key is [REDACTED:aws-access-token]");
  expect(r.output_text).toBe("done");
});
