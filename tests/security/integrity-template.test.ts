/**
 * A chat template whose cost depends on the request (issue 10, item 7): it renders the start-up
 * trial's 4-message sample at once, so `models add` and serve accept it, and loops for minutes
 * (growing memory) once a chat has more than 16 messages. node-llama-cpp renders templates
 * synchronously on the event loop: before the bound, that first long chat stalled the whole
 * server. Now the compiled binary renders it first in a worker under limits.chatTemplateMs and
 * limits.chatTemplateChars, refuses it with a 400, and keeps answering everyone else.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { JinjaTemplateChatWrapper, LlamaChat, type ChatHistoryItem, type ChatWrapper, type LlamaContext } from "node-llama-cpp";
import { makeApp, makeEngine, tmpDir, withTemplate } from "../helpers";
import { serveBinary, type Served } from "./request-helpers";

/** ChatML-like (but not ChatML, so node-llama-cpp keeps it as a Jinja template) with a loop behind a message count. */
const EXPLODING = "{% if messages|length > 16 %}{% for i in range(2000000000) %}x{% endfor %}{% endif %}" +
  "{% for m in messages %}<|im_start|>{{ m.role }}: {{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant:";
const TEMPLATE_MS = 3_000;
const TEMPLATE_CHARS = 4_000;

const dir = tmpDir("appliance-template-");
let server: Served;


function chat(messages: { role: string; content: string }[], signal?: AbortSignal) {
  return fetch(`http://127.0.0.1:${server.port}/v1/chat/completions`, {
    method: "POST", signal: signal ?? AbortSignal.timeout(60_000),
    headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages, max_tokens: 4, temperature: 0 }),
  });
}

const turns = (n: number) => Array.from({ length: n }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `hello ${i}` }));

beforeAll(async () => {
  server = await serveBinary([], {
    model: await withTemplate(EXPLODING, path.join(dir, "crafted.gguf")),
    env: { APPLIANCE_LIMITS__CHAT_TEMPLATE_MS: String(TEMPLATE_MS), APPLIANCE_LIMITS__CHAT_TEMPLATE_CHARS: String(TEMPLATE_CHARS) },
  });
}, 180_000);
afterAll(async () => { await server?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

describe("a chat template that explodes with the request", () => {
  test("passes models add and the start trial, and renders a short chat normally", async () => {
    const res = await chat(turns(3));
    expect(res.status).toBe(200);
    const body = await res.json() as { choices: { message: { role: string } }[]; usage: { prompt_tokens: number } };
    expect(body.choices[0]!.message.role).toBe("assistant");
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
  }, 120_000);

  test("a chat of 17 messages is refused with 400 chat_template_bound, and /health answers while it is rendered", async () => {
    let chatDone = 0, healthDone = 0;
    // Before the bound this request never came back (the event loop looped in the template): the
    // fetch deadline aborted it, and /health got no answer either.
    const refused = chat(turns(17)).then(async (r) => { chatDone = performance.now(); return { status: r.status, body: await r.json() }; });
    const health = fetch(`http://127.0.0.1:${server.port}/health`, { signal: AbortSignal.timeout(60_000) })
      .then((r) => { healthDone = performance.now(); return r.status; });
    expect(await health).toBe(200);
    const { status, body } = await refused;
    expect(status).toBe(400);
    expect(body).toEqual({ error: {
      message: expect.stringMatching(new RegExp(`chat template did not finish rendering these messages within ${TEMPLATE_MS} ms`)),
      type: "invalid_request_error", param: "messages", code: "chat_template_bound",
    } });
    // The server answered /health while the template was still being rendered (the chat waits out its deadline).
    expect(healthDone).toBeLessThan(chatDone);
  }, 120_000);

  test("renders run side by side (limits.chatTemplateWorkers): a short chat is answered while a slow one is still rendering", async () => {
    // With one worker per model, the short chat's check queued behind the 17-message render and came back after its 400.
    let slowDone = 0, shortDone = 0;
    const slow = chat(turns(17)).then((r) => { slowDone = performance.now(); return r.status; });
    const short = chat(turns(3)).then((r) => { shortDone = performance.now(); return r.status; });
    expect(await short).toBe(200);
    expect(await slow).toBe(400);
    expect(shortDone).toBeLessThan(slowDone);
  }, 120_000);

  test("after a refusal the worker is replaced: short chats still answer", async () => {
    for (let i = 0; i < 2; i++) expect((await chat(turns(5))).status).toBe(200);
  }, 120_000);

  test("a chat that renders more than limits.chatTemplateChars is refused with 400 chat_template_bound", async () => {
    const res = await chat([{ role: "user", content: "word ".repeat(TEMPLATE_CHARS / 4) }]);
    expect(res.status).toBe(400);
    const body = await res.json() as { error: { code: string; message: string } };
    expect(body.error.code).toBe("chat_template_bound");
    expect(body.error.message).toMatch(new RegExp(`more than ${TEMPLATE_CHARS} characters`));
  }, 120_000);
});

test("from source, in process: the same refusal (the worker runs from its .ts file)", async () => {
  const engine = await makeEngine({ path: await withTemplate(EXPLODING, path.join(dir, "crafted.gguf")), parallel: 1, maxQueue: 4,
    chatTemplate: { ms: TEMPLATE_MS, chars: TEMPLATE_CHARS } });
  try {
    const { app, key } = await makeApp({ engine });
    const post = (n: number) => app.handle(new Request("http://localhost/v1/chat/completions", {
      method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: turns(n), max_tokens: 2, temperature: 0 }),
    }));
    const short = await post(3);
    // The body on failure. Fresh-clone CI runs got a 400 here, once after 60 s: the worker lost its init (fixed in d81e6b7, template-worker-start.test.ts).
    expect(short.status, await short.clone().text()).toBe(200);
    const res = await post(17);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("chat_template_bound");
  } finally {
    await engine.dispose();
  }
}, 120_000);

test("node-llama-cpp's own renders go through the bound too: the engine's wrapper renders in a worker, identically, and a render past the deadline throws", async () => {
  const engine = await makeEngine({ path: await withTemplate(EXPLODING, path.join(dir, "crafted.gguf")), parallel: 1, maxQueue: 4,
    chatTemplate: { ms: TEMPLATE_MS, chars: TEMPLATE_CHARS } });
  try {
    // The wrapper the engine hands to LlamaChat (and renders with to count prompt tokens).
    const loaded = (engine as unknown as { loaded: Map<string, { chatWrapper: ChatWrapper; context: LlamaContext }> }).loaded.get("tiny")!;
    const wrapper = loaded.chatWrapper;
    expect(wrapper).toBeInstanceOf(JinjaTemplateChatWrapper);
    const history = (n: number): ChatHistoryItem[] => turns(n).map((t) => (t.role === "user" ? { type: "user", text: t.content } : { type: "model", response: [t.content] }));
    const functions = { lookup: { description: "look a word up", params: { type: "object", properties: { word: { type: "string" } } } } } as const;
    // Rendered in the worker, sent back as JSON: the same text, special tokens and triggers as rendering in place.
    const inPlace = Object.getPrototypeOf(wrapper) as ChatWrapper;
    for (const availableFunctions of [undefined, functions]) {
      const opts = { chatHistory: [...history(4), { type: "model", response: [] }] as ChatHistoryItem[], availableFunctions, documentFunctionParams: true };
      const a = wrapper.generateContextState(opts), b = inPlace.generateContextState(opts);
      expect(a.contextText.toJSON()).toEqual(b.contextText.toJSON());
      expect(a.stopGenerationTriggers.map((t) => t.toJSON())).toEqual(b.stopGenerationTriggers.map((t) => t.toJSON()));
    }
    // A history the request's check never saw (here: handed straight to LlamaChat, as a context shift or a function-call
    // round would) used to loop on the event loop for minutes; now that render is refused at the deadline.
    const sequence = loaded.context.getSequence();
    const chat = new LlamaChat({ contextSequence: sequence, chatWrapper: wrapper, autoDisposeSequence: false });
    try {
      expect(() => wrapper.generateContextState({ chatHistory: history(17) })).toThrow(/did not finish rendering within 3000 ms/);
      const err = await chat.generateResponse(history(17), { maxTokens: 2 }).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: "chat_template_bound" });
      const ok = await chat.generateResponse(history(3), { maxTokens: 2 }); // the replaced worker renders the next one
      expect(typeof ok.response).toBe("string");
    } finally {
      chat.dispose({ disposeSequence: true });
    }
  } finally {
    await engine.dispose();
  }
}, 120_000);
