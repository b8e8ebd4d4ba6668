/**
 * Burst gathering with local and upstream models side by side: every POST to a generation route is announced at
 * onRequest (before its body says which model), and a request for an upstream model used to stay "on its way to
 * the engine" for its whole upstream flight, so an idle local start waited its gather cap behind it. The prologue
 * now withdraws it as soon as the model is known to be upstream. Observed on the engine's own arrivals count while
 * a real upstream (a small server holding its answer) has the request.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Arrivals } from "../../src/engine/arrivals";
import type { LlamaEngine } from "../../src/engine/llama";
import { listenApp, makeApp, until } from "../helpers";

let base = "", key = "", engine: LlamaEngine, stop = async () => {};
let release = () => {};
const received: string[] = [];
const upstream = Bun.serve({
  hostname: "127.0.0.1", port: 0,
  async fetch(req) {
    received.push(new URL(req.url).pathname);
    await new Promise<void>((r) => { release = r; }); // held until the test has looked
    return Response.json({
      id: "chatcmpl-1", object: "chat.completion", created: 1, model: "up",
      choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
    });
  },
});

beforeAll(async () => {
  const t = await makeApp({ config: {
    rateLimit: { rpm: 0, tpm: 0 },
    upstreams: [{ url: `http://127.0.0.1:${upstream.port}/v1`, models: ["up"] }], gateway: { healthIntervalMs: 0 },
  } });
  base = listenApp(t.app);
  key = t.key;
  engine = t.engine;
  stop = async () => { await t.app.stop(true); await t.engine.dispose(); };
}, 120_000);
afterAll(async () => { release(); upstream.stop(true); await stop(); });

const onItsWay = () => (engine as unknown as { arrivals: Arrivals }).arrivals.count;
const chat = (model: string) => fetch(`${base}/v1/chat/completions`, {
  method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
  body: JSON.stringify({ model, max_tokens: 2, messages: [{ role: "user", content: "hi" }] }),
});

test("a request for an upstream model is not on its way to the local engine while the upstream has it", async () => {
  const up = chat("up");
  await until(() => received.length === 1 || undefined, 20_000, "the upstream to receive the request");
  // Before: 1 here (announced at onRequest, withdrawn only when the response ended), holding idle local starts.
  expect(onItsWay()).toBe(0);
  // A local request meanwhile is served; nothing is left on its way after it.
  const local = await chat("tiny");
  expect(local.status).toBe(200);
  expect(onItsWay()).toBe(0);
  release();
  const r = await up;
  expect(r.status).toBe(200);
  expect(((await r.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe("hello");
}, 60_000);

test("an unknown model and a bad body are withdrawn too", async () => {
  expect((await chat("nope")).status).toBe(404);
  const bad = await fetch(`${base}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: "{\"model\":",
  });
  expect(bad.status).toBe(400);
  expect(onItsWay()).toBe(0);
}, 60_000);
