/**
 * Leak run (a gateway over an upstream that answers exactly what the test gives it): strings an upstream's answer
 * carries besides the text reached the client unscanned: a Responses answer's logprobs (they spelled the secret the
 * text had redacted), its refusal parts, function names and custom tool calls' input; a chat tool call's name and id,
 * streamed or not, and content given as a list of parts; upstream error messages, mid-stream and 4xx.
 */
import { afterEach, expect, test } from "bun:test";
import { chatChunk, recordingUpstream, sseChunks, startGateway, type Seen } from "./gateway-helpers";

const cleanup: (() => unknown)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });
const KEY = "AKIAIOSFODNN7EXAMPLQ";

async function gatewayOver(answer: (req: Request, seen: Seen) => Response) {
  const up = recordingUpstream((req, s) => (s.path.endsWith("/models") ? Response.json({ data: [] }) : answer(req, s)));
  cleanup.push(() => up.stop());
  const gw = await startGateway({ upstreams: [{ url: up.url, models: ["m"] }], gateway: { retries: 0, healthIntervalMs: 0 } } as never);
  cleanup.push(() => gw.close());
  const post = async (path: string, body: object) => {
    const r = await fetch(`${gw.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" }, body: JSON.stringify({ model: "m", ...body }) });
    return { status: r.status, text: await r.text() };
  };
  return post;
}

test("Responses, not streamed: logprobs of a redacted text go; refusals, function names, custom tool input are scanned", async () => {
  const post = await gatewayOver(() => Response.json({ id: "resp_1", object: "response", status: "completed", model: "m", output: [
    { type: "message", id: "msg_1", role: "assistant", status: "completed", content: [
      { type: "output_text", text: `key ${KEY}`, annotations: [], logprobs: [{ token: " AKIA", logprob: 0 }, { token: "IOSFODNN7", logprob: 0 }, { token: "EXAMPLQ", logprob: 0 }] },
      { type: "refusal", refusal: `I cannot share ${KEY}` }] },
    { type: "function_call", id: "fc_1", call_id: "c1", name: KEY, arguments: "{}", status: "completed" },
    { type: "custom_tool_call", id: "ct_1", call_id: "c2", name: "t", input: `use ${KEY}` },
  ], usage: { input_tokens: 1, output_tokens: 3, total_tokens: 4 } }));
  const r = await post("/v1/responses", { input: "x" });
  expect(r.status).toBe(200);
  expect(r.text).not.toContain("IOSFODNN7");
  expect(JSON.parse(r.text).output[0].content[0]).toMatchObject({ text: "key [REDACTED:aws-access-token]", logprobs: [] });
});

test("chat, not streamed: a tool call's name and id, list content; streamed: a call's name and id", async () => {
  const post = await gatewayOver((_req, s) => {
    if (JSON.parse(s.body).stream) {
      return new Response(sseChunks([chatChunk({ role: "assistant", content: "" }),
        chatChunk({ tool_calls: [{ index: 0, id: KEY, type: "function", function: { name: KEY, arguments: "{}" } }] }),
        chatChunk({}, "tool_calls"), "[DONE]"], 9), { headers: { "content-type": "text/event-stream" } });
    }
    return Response.json({ id: "x", object: "chat.completion", created: 1, model: "m", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      choices: [{ index: 0, finish_reason: "tool_calls", message: { role: "assistant", content: [{ type: "text", text: `key ${KEY}` }],
        tool_calls: [{ id: KEY, type: "function", function: { name: KEY, arguments: "{}" } }] } }] });
  });
  for (const stream of [false, true]) {
    const r = await post("/v1/chat/completions", { stream, messages: [{ role: "user", content: "x" }] });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain("IOSFODNN7");
    expect(r.text).toContain("[REDACTED:aws-access-token]");
  }
});

test("upstream error messages, mid-stream and 4xx, are scanned", async () => {
  const post = await gatewayOver((_req, s) => (JSON.parse(s.body).stream
    ? new Response(sseChunks([chatChunk({ role: "assistant", content: "" }), { error: { message: `failed near ${KEY}` } }], 9), { headers: { "content-type": "text/event-stream" } })
    : Response.json({ error: { message: `bad input: ${KEY}`, type: "invalid_request_error", param: null, code: null } }, { status: 400 })));
  for (const stream of [false, true]) {
    const r = await post("/v1/chat/completions", { stream, messages: [{ role: "user", content: "x" }] });
    expect(r.text).not.toContain("IOSFODNN7");
    expect(r.text).toContain("[REDACTED:aws-access-token]");
  }
});

// Gateway red-team run (stop 73): a message cut to 300 (mid-stream) or 1000 characters (4xx) before the scan left a key
// across the cut as a prefix too short for its rule; an upstream usage's names went out unread.
test("upstream error messages are scanned whole, then cut: a key across the cut leaves no prefix", async () => {
  const long = (n: number) => `${"x".repeat(n - 8)} ${KEY} tail`;
  const post = await gatewayOver((_req, s) => (JSON.parse(s.body).stream
    ? new Response(sseChunks([chatChunk({ role: "assistant", content: "" }), { error: { message: long(300) } }], 9), { headers: { "content-type": "text/event-stream" } })
    : Response.json({ error: { message: long(1000), type: "invalid_request_error", param: null, code: null } }, { status: 400 })));
  for (const stream of [false, true]) {
    const r = await post("/v1/chat/completions", { stream, messages: [{ role: "user", content: "x" }] });
    expect(r.text, String(stream)).not.toContain("AKIAIOS");
  }
});

test("an upstream's usage is passed on under the API's names only (streamed and not)", async () => {
  const usage = { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, [KEY]: 7, prompt_tokens_details: { cached_tokens: 1, "http://10.0.0.5/": 2 },
    completion_tokens_details: { reasoning_tokens: 1 }, extra: { nested: 1 } };
  const post = await gatewayOver((_req, s) => (JSON.parse(s.body).stream
    ? new Response(sseChunks([chatChunk({ role: "assistant", content: "hi" }), chatChunk({}, "stop"), { id: "x", object: "chat.completion.chunk", created: 1, model: "m", choices: [], usage }, "[DONE]"]),
      { headers: { "content-type": "text/event-stream" } })
    : Response.json({ id: "x", object: "chat.completion", created: 1, model: "m", usage, choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }] })));
  for (const stream of [false, true]) {
    const r = await post("/v1/chat/completions", { stream, ...(stream && { stream_options: { include_usage: true } }), messages: [{ role: "user", content: "x" }] });
    expect(r.status).toBe(200);
    for (const leak of ["IOSFODNN7", "10.0.0.5", "extra"]) expect(r.text, `${stream} ${leak}`).not.toContain(leak);
    expect(r.text).toContain('"cached_tokens":1');
    expect(r.text).toContain('"reasoning_tokens":1');
  }
});

// Second fix-attack run: strings nested deeper in the answer (an annotation's title and url, an audio transcript,
// reasoning details) went out as sent.
test("nested strings of an answer are scanned: annotations, audio transcript, reasoning details; Responses annotations", async () => {
  const post = await gatewayOver((_req, s) => (s.path.endsWith("/responses")
    ? Response.json({ id: "resp_1", object: "response", status: "completed", model: "m", usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 }, output: [
      { type: "message", id: "msg_1", role: "assistant", status: "completed", content: [
        { type: "output_text", text: "see the link", annotations: [{ type: "url_citation", url: "http://10.1.2.3/admin", title: KEY, start_index: 0, end_index: 3 }] }] }] })
    : Response.json({ id: "x", object: "chat.completion", created: 1, model: "m", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: "fine",
        annotations: [{ type: "url_citation", url_citation: { url: "http://10.1.2.3/admin", title: KEY } }],
        audio: { id: "a1", transcript: `key ${KEY}`, data: "", expires_at: 1 }, reasoning_details: [{ text: KEY }] } }] })));
  for (const [path, body] of [["/v1/chat/completions", { messages: [{ role: "user", content: "x" }] }], ["/v1/responses", { input: "x" }]] as const) {
    const r = await post(path, body);
    expect(r.status).toBe(200);
    expect(r.text).not.toContain("IOSFODNN7");
    expect(r.text).not.toContain("10.1.2.3");
  }
});

test("streamed reasoning_content (and vLLM's reasoning) is relayed through a filter of its own, before the answer; Responses gets a reasoning item", async () => {
  const post = await gatewayOver(() => new Response(sseChunks([chatChunk({ role: "assistant", content: "" }),
    chatChunk({ reasoning_content: "think: the key is AKIA" }), chatChunk({ reasoning: "IOSFODNN7EXAMPLQ, so" }),
    chatChunk({ content: "the answer" }), chatChunk({}, "stop"), "[DONE]"], 7), { headers: { "content-type": "text/event-stream" } }));
  const r = await post("/v1/chat/completions", { stream: true, messages: [{ role: "user", content: "x" }] });
  expect(r.status).toBe(200);
  const deltas = r.text.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)).choices[0]?.delta ?? {});
  const thought = deltas.map((d) => d.reasoning_content ?? "").join("");
  expect(thought).toBe("think: the key is [REDACTED:aws-access-token], so");
  expect(deltas.map((d) => d.content ?? "").join("")).toBe("the answer");
  const firstContent = deltas.findIndex((d) => d.content);
  expect(deltas.findLastIndex((d) => d.reasoning_content)).toBeLessThan(firstContent);
  const resp = await post("/v1/responses", { stream: true, input: "x" });
  const types = resp.text.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)));
  const done = types.find((e) => e.type === "response.completed");
  expect(done.response.output.map((o: { type: string }) => o.type)).toEqual(["reasoning", "message"]);
  expect(done.response.output[0].content[0].text).toBe("think: the key is [REDACTED:aws-access-token], so");
  expect(resp.text).not.toContain("IOSFODNN7");
});

test("streamed Responses through the gateway: reasoning.effort none and an echoed thought go up; the upstream's cached and reasoning counts come back", async () => {
  let sent: Record<string, unknown> | undefined;
  const post = await gatewayOver((_req, s) => {
    sent = JSON.parse(s.body);
    return new Response(sseChunks([chatChunk({ role: "assistant", content: "" }), chatChunk({ content: "ok" }), chatChunk({}, "stop"),
      { id: "x", object: "chat.completion.chunk", created: 1, model: "m", choices: [],
        usage: { prompt_tokens: 5, completion_tokens: 9, total_tokens: 14, prompt_tokens_details: { cached_tokens: 2 }, completion_tokens_details: { reasoning_tokens: 7 } } },
      "[DONE]"]), { headers: { "content-type": "text/event-stream" } });
  });
  const r = await post("/v1/responses", { stream: true, reasoning: { effort: "none" }, tools: [{ type: "function", name: "f", parameters: { type: "object", properties: {} } }], input: [
    { role: "user", content: "q" }, { type: "reasoning", id: "rs_1", summary: [], content: [{ type: "reasoning_text", text: "ECHOED THOUGHT" }] },
    { type: "function_call", call_id: "c1", name: "f", arguments: "{}" }, { type: "function_call_output", call_id: "c1", output: "ok" }] });
  expect(r.status).toBe(200);
  expect(sent!.reasoning_effort).toBe("none");
  expect((sent!.messages as { role: string; reasoning_content?: string }[]).find((m) => m.role === "assistant")?.reasoning_content).toBe("ECHOED THOUGHT");
  const done = r.text.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6))).find((e) => e.type === "response.completed");
  expect(done.response.usage).toMatchObject({ input_tokens_details: { cached_tokens: 2 }, output_tokens_details: { reasoning_tokens: 7 } });
});

// Red-team run (stop 72): a key split over two output_text parts (or two message items) passed in halves and came
// back whole in output_text; strings of a choice outside its message (finish_reason, logprobs) went out as sent.
test("Responses, not streamed: a key split over parts or items is found whole; part logprobs that spell a key go", async () => {
  const half = [KEY.slice(0, 10), KEY.slice(10)];
  const item = (texts: string[], logprobs?: object[]) => ({ type: "message", id: "m", role: "assistant", status: "completed",
    content: texts.map((text) => ({ type: "output_text", text, annotations: [], ...(logprobs && { logprobs }) })) });
  for (const output of [[item(half)], [item([half[0]!]), item([half[1]!])], [item(["hi"], [{ token: KEY, logprob: 0, top_logprobs: [] }])],
    [item(["hi"], [{ token: "h", logprob: 0, top_logprobs: [{ token: KEY, logprob: -1 }] }])]]) {
    const post = await gatewayOver(() => Response.json({ object: "response", status: "completed", model: "m", output, output_text: "", usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 } }));
    const r = await post("/v1/responses", { input: "x" });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain("IOSFOD");
    expect(r.text).not.toContain("NN7EXAMPLQ");
    for (const c of cleanup.splice(0)) await c();
  }
});

test("chat and completions, not streamed: a choice's finish_reason and logprobs are read too", async () => {
  const answers: object[] = [
    { index: 0, finish_reason: KEY, message: { role: "assistant", content: "hi" } },
    { index: 0, finish_reason: "stop", message: { role: "assistant", content: "hi" }, logprobs: { content: [{ token: KEY, logprob: 0, top_logprobs: [] }] } },
    { index: 0, finish_reason: "stop", message: { role: "assistant", content: "hi" }, logprobs: { content: [{ token: "hi", logprob: 0, top_logprobs: [{ token: KEY, logprob: -1 }] }] } },
    { index: 0, finish_reason: "stop", message: { role: "assistant", content: "hi" }, extra: { note: KEY } },
    { index: 0, finish_reason: "stop", text: "hi", logprobs: { tokens: ["h", "i"], token_logprobs: [0, 0], top_logprobs: [{ [KEY]: -1 }, { i: 0 }], text_offset: [0, 1] } },
  ];
  for (const choice of answers) {
    const chat = "message" in choice;
    const post = await gatewayOver(() => Response.json({ id: "x", object: chat ? "chat.completion" : "text_completion", created: 1, model: "m",
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, choices: [choice] }));
    const r = chat ? await post("/v1/chat/completions", { messages: [{ role: "user", content: "x" }] }) : await post("/v1/completions", { prompt: "x" });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain("IOSFOD");
    expect(["stop", "length", "tool_calls", "content_filter"]).toContain(JSON.parse(r.text).choices[0].finish_reason);
    for (const c of cleanup.splice(0)) await c();
  }
});

// Attack on that fix (stop 72): joined with nothing alone, a key at a part's end ran into the next part's word and
// passed; a reasoning part's text was joined with the answer's; text that is not a string, a message item's string
// content, a choice's other field, the answer's own id went unscanned; a 100,000-deep body was a 500.
test("Responses and chat, not streamed: keys inside a part, in reasoning, in odd shapes and top-level fields are all read", async () => {
  const msg = (content: unknown) => ({ type: "message", id: "m", role: "assistant", status: "completed", content });
  const text = (t: unknown, extra = {}) => ({ type: "output_text", text: t, annotations: [], ...extra });
  const responses: [unknown[], string][] = [
    [[msg([text(`The key is ${KEY}`), text("Done.")])], "The key is [REDACTED:aws-access-token]Done."],
    [[msg([text(`The key is ${KEY}`)]), msg([text("Done.")])], "The key is [REDACTED:aws-access-token]Done."],
    [[{ type: "reasoning", id: "r", content: [{ type: "reasoning_text", text: `The user's key is ${KEY}` }] }, msg([text("Sorry, I can't share that.")])], "Sorry, I can't share that."],
    [[msg([text([KEY]), text("hi")])], "hi"],
    [[msg(`key ${KEY}`)], ""],
    [[msg([{ type: "refusal", refusal: "no", logprobs: [{ token: KEY, logprob: 0 }] }, text("hi")])], "hi"],
  ];
  for (const [output, expected] of responses) {
    const post = await gatewayOver(() => Response.json({ id: "resp_1", instructions: `use ${KEY}`, object: "response", status: "completed", model: "m", output, output_text: "", usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 } }));
    const r = await post("/v1/responses", { input: "x" });
    expect([r.status, r.text.includes("IOSFOD")], r.text).toEqual([200, false]);
    expect(JSON.parse(r.text).output_text).toBe(expected);
    for (const c of cleanup.splice(0)) await c();
  }
  const choices: [string, object][] = [
    ["/v1/chat/completions", { index: 0, finish_reason: "stop", message: { role: "assistant", content: "hi" }, text: KEY }],
    ["/v1/completions", { index: 0, finish_reason: "stop", text: "hi", message: { content: KEY } }],
    ["/v1/completions", { index: 0, finish_reason: "stop", text: [KEY] }],
  ];
  for (const [path, choice] of choices) {
    const post = await gatewayOver(() => Response.json({ id: `x ${KEY}`, object: "chat.completion", created: 1, model: "m", system_fingerprint: KEY,
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, choices: [choice] }));
    const r = await post(path, path.includes("chat") ? { messages: [{ role: "user", content: "x" }] } : { prompt: "x" });
    expect([path, r.status, r.text.includes("IOSFOD")], r.text).toEqual([path, 200, false]);
    for (const c of cleanup.splice(0)) await c();
  }
  const deep = await gatewayOver(() => new Response(`{"choices":[{"message":{"content":"hi","x":${"[".repeat(100_000)}${"]".repeat(100_000)}}}]}`, { headers: { "content-type": "application/json" } }));
  const r = await deep("/v1/chat/completions", { messages: [{ role: "user", content: "x" }] });
  expect([r.status, r.text.includes("upstream_error")]).toEqual([502, true]);
});

test("streamed chat: an upstream's id is scanned, a created that is not a number is not sent", async () => {
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({ ...chatChunk(delta, finish), id: `chatcmpl-${KEY}`, created: `at ${KEY}` });
  const post = await gatewayOver(() => new Response(sseChunks([chunk({ role: "assistant", content: "hi" }), chunk({}, "stop"), "[DONE]"], 9),
    { headers: { "content-type": "text/event-stream" } }));
  const r = await post("/v1/chat/completions", { stream: true, messages: [{ role: "user", content: "x" }] });
  expect([r.status, r.text.includes("hi"), r.text.includes("IOSFOD")], r.text).toEqual([200, true, false]);
});

// Second attack on the gateway scan (stop 72): strings in usage, in a message or content entry that is a string, in
// output_text that is not one, in an embedding's entry; a key split over chat's list content or over logprobs lists,
// or spelled by logprobs bytes; choices or output that are no list; and a usage of 1e999 that locked the key out.
test("every string of an upstream's answer is read, whatever its field or shape; usage passes as counts only", async () => {
  const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
  const chat = (choice: object, extra = {}) => ({ id: "x", object: "chat.completion", created: 1, model: "m", usage, choices: [choice], ...extra });
  const ok = { index: 0, finish_reason: "stop", message: { role: "assistant", content: "hi" } };
  const cases: [string, object, object | string][] = [
    ["/v1/chat/completions", {}, chat(ok, { usage: { ...usage, note: KEY, prompt_tokens_details: { x: KEY } } })],
    ["/v1/chat/completions", {}, chat({ index: 0, finish_reason: "stop", message: `key ${KEY}` })],
    ["/v1/chat/completions", {}, chat({ index: 0, finish_reason: "stop", message: { role: "assistant", content: [{ type: "text", text: "AKIAIOSF" }, { type: "text", text: "ODNN7EXAMPLQ" }] } })],
    ["/v1/chat/completions", {}, chat({ ...ok, logprobs: { content: [{ token: "hi", logprob: 0, top_logprobs: [] }], refusal: [{ token: "AKIAIOSF", logprob: 0 }, { token: "ODNN7EXAMPLQ", logprob: 0 }] } })],
    ["/v1/chat/completions", {}, chat({ ...ok, logprobs: { content: [{ token: "hi", logprob: 0, bytes: [...Buffer.from(`x ${KEY}`)], top_logprobs: [] }] } })],
    ["/v1/responses", { input: "x" }, { id: "r", object: "response", status: "completed", model: "m", usage: { input_tokens: 1, output_tokens: 1 }, output_text: [KEY],
      output: [{ type: "message", id: "m", role: "assistant", status: "completed", content: [`str ${KEY}`, { type: "output_text", text: "hi", logprobs: [{ token: "AKIAIOSF" }] },
        { type: "output_text", text: " there", logprobs: [{ token: "ODNN7EXAMPLQ" }] }] }] }],
    ["/v1/embeddings", { input: "x" }, { object: "list", model: "m", usage, data: [{ object: "embedding", index: 0, embedding: [0.1], note: `n ${KEY}` }] }],
  ];
  for (const [path, body, answer] of cases) {
    const post = await gatewayOver(() => Response.json(answer));
    const r = await post(path, path === "/v1/chat/completions" ? { messages: [{ role: "user", content: "x" }] } : body);
    expect([path, r.status, r.text.includes("IOSFOD"), r.text.includes("EXAMPLQ")], r.text).toEqual([path, 200, false, false]);
    for (const c of cleanup.splice(0)) await c();
  }
  for (const answer of [{ ...chat(ok), choices: { a: { message: { content: KEY } } } }, { id: "r", object: "response", output: { text: KEY } }]) {
    const post = await gatewayOver(() => Response.json(answer));
    const r = "choices" in answer ? await post("/v1/chat/completions", { messages: [{ role: "user", content: "x" }] }) : await post("/v1/responses", { input: "x" });
    expect([r.status, r.text.includes("IOSFOD")], r.text).toEqual([502, false]);
    for (const c of cleanup.splice(0)) await c();
  }
  // 1e999 parses as Infinity: charged to the key, it answered 429 retry-after Infinity from then on
  const post = await gatewayOver(() => new Response(JSON.stringify(chat(ok)).replace('"prompt_tokens":1', '"prompt_tokens":1e999'), { headers: { "content-type": "application/json" } }));
  for (let i = 0; i < 3; i++) expect((await post("/v1/chat/completions", { messages: [{ role: "user", content: "x" }] })).status).toBe(200);
});

test("streamed: usage with strings in it passes as counts only", async () => {
  const post = await gatewayOver(() => new Response(sseChunks([chatChunk({ role: "assistant", content: "hi" }), chatChunk({}, "stop"),
    { id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, x: KEY } }, "[DONE]"], 9),
    { headers: { "content-type": "text/event-stream" } }));
  const r = await post("/v1/chat/completions", { stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "x" }] });
  expect([r.status, r.text.includes("hi"), r.text.includes("IOSFOD"), r.text.includes('"total_tokens":2')], r.text).toEqual([200, true, false, true]);
});
