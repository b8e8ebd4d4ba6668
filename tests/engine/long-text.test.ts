/**
 * Long texts are counted in pieces before they are tokenized whole (src/engine/long-text.ts): llama.cpp's tokenizer
 * takes time quadratic in a run of characters the vocabulary lacks, on the event loop (red team: 199,000 CJK
 * characters in a chat froze the server 8.8 s per request, /health included). The tokenizer is watched, not timed:
 * a text that cannot fit must never reach it whole, and a text that fits is counted and served exactly as before.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LlamaEngine } from "../../src/engine/llama";
import { countBeyond, PIECE } from "../../src/engine/long-text";
import { listenApp, makeApp, makeEngine, tinyModel } from "../helpers";

let base = "", key = "", engine: LlamaEngine, stop = async () => {};
/** The longest text given to the model's tokenizer since the last reset. */
let longest = 0;

beforeAll(async () => {
  const t = await makeApp({ config: { rateLimit: { rpm: 0, tpm: 0 } } });
  base = listenApp(t.app);
  key = t.key;
  engine = t.engine;
  watchTokenizer(engine);
  stop = async () => { await t.app.stop(true); await t.engine.dispose(); };
}, 120_000);
afterAll(() => stop());

/**
 * The native model's own call, under every path (model.tokenize, model.tokenizer, LlamaText.tokenize): its methods
 * are read-only, so the model is given a stand-in that passes everything through and notes each text's length.
 * Refusals only: a context created while it stands in would be handed the stand-in, which native code cannot take.
 * Returns the restore.
 */
function watchTokenizer(e: LlamaEngine): () => void {
  const model = (e as unknown as { loaded: Map<string, { model: { _model: object } }> }).loaded.get("tiny")!.model;
  const native = model._model as Record<string | symbol, unknown>;
  model._model = new Proxy(native, {
    get(target, name) {
      const value = Reflect.get(target, name) as unknown;
      if (typeof value !== "function") return value;
      if (name !== "tokenize") return value.bind(target);
      return (text: unknown, ...rest: unknown[]) => {
        if (typeof text === "string") longest = Math.max(longest, text.length);
        return value.call(target, text, ...rest);
      };
    },
  });
  return () => { model._model = native; };
}

async function post(path: string, json: unknown, at = base) {
  const r = await fetch(`${at}${path}`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(json) });
  return { status: r.status, body: (await r.json()) as any };
}

const cjk = (n: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20000))).join("");

describe("a text that cannot fit is refused from its pieces, never tokenized whole", () => {
  test.each([
    ["chat", "/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: cjk(150_000) }], max_tokens: 4 }, "messages"],
    ["completions", "/v1/completions", { model: "tiny", prompt: cjk(150_000), max_tokens: 4 }, "prompt"],
    ["embeddings", "/v1/embeddings", { model: "tiny", input: ["short", cjk(150_000)] }, "input"],
    ["tokenize", "/tokenize", { content: cjk(150_000) }, "content"],
  ])("%s", async (_, path, body, param) => {
    longest = 0;
    const r = await post(path, body);
    expect([r.status, r.body.error.code, r.body.error.param]).toEqual([400, "context_length_exceeded", param]);
    expect(longest).toBeLessThanOrEqual(PIECE);
  });

  test("the 400 says its counts are lower bounds (they are: counting stopped once the prompt could not fit)", async () => {
    // peer-fidelity run: 6,000 words read "2731 in the prompt" (so did 3,000 words); a client trimming by it trims too little
    for (const [path, body] of [["/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hello ".repeat(6_000) }], max_tokens: 2 }],
      ["/v1/completions", { model: "tiny", prompt: "hello ".repeat(6_000), max_tokens: 2 }]] as const) {
      const r = await post(path, body);
      const m = /you requested at least (\d+) tokens \(at least (\d+) in the prompt, 2 for the completion\)/.exec(r.body.error.message);
      expect([r.status, r.body.error.code, m !== null]).toEqual([400, "context_length_exceeded", true]);
      expect(Number(m![2])).toBeLessThanOrEqual(6_000); // each "hello " is at least one token
    }
  });

  test("embeddings: an empty input is refused before any other input is tokenized", async () => {
    longest = 0;
    const r = await post("/v1/embeddings", { model: "tiny", input: ["x".repeat(3_000), ""] });
    expect([r.status, r.body.error.message]).toEqual([400, "input[1] is empty."]);
    expect(longest).toBe(0);
  });

  test("/tokenize takes no more characters than a prompt may have", async () => {
    const r = await post("/tokenize", { content: "a".repeat(200_001) });
    expect([r.status, r.body.error.code, r.body.error.param]).toEqual([400, "input_too_long", "content"]);
  });
});

describe("a long text that fits is never refused from its pieces", () => {
  test("its count from the pieces never passes the limit its whole count meets; one that does not fit is at most its whole count", () => {
    const model = (engine as unknown as { loaded: Map<string, { model: { tokenize(t: string, s: boolean): unknown[] } }> }).loaded.get("tiny")!.model;
    const count = (t: string) => model.tokenize(t, false).length;
    const prose = "The quick brown fox, jumping over 13 lazy dogs; ".repeat(400);
    for (const text of [prose, cjk(9_000), `${prose}${cjk(5_000)}${prose}`, "😀".repeat(6_000), "x".repeat(30_000)]) {
      const whole = count(text);
      expect(countBeyond(count, text, whole)).toBeUndefined();
      const below = countBeyond(count, text, Math.floor(whole / 2));
      expect(below).toBeGreaterThan(Math.floor(whole / 2));
      expect(below).toBeLessThanOrEqual(whole);
    }
  });
});

describe("a larger context (16k): the room the answer asks for counts", () => {
  let at = "", stopBig = async () => {};
  beforeAll(async () => {
    const big = await makeEngine({ path: await tinyModel({ ctx: 16_384 }), ctxSize: 16_384, parallel: 1, maxQueue: 4 });
    unwatch = watchTokenizer(big);
    const t = await makeApp({ engine: big, config: { rateLimit: { rpm: 0, tpm: 0 }, ctxSize: 16_384 } });
    at = listenApp(t.app);
    key2 = t.key;
    stopBig = async () => { await t.app.stop(true); await big.dispose(); };
  }, 120_000);
  afterAll(() => stopBig());
  let key2 = "", unwatch = () => {};
  const ask = (json: unknown) => fetch(`${at}/v1/completions`, { method: "POST", headers: { authorization: `Bearer ${key2}`, "content-type": "application/json" },
    body: JSON.stringify(json) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

  test("a prompt that fits alone but not beside max_tokens is refused from its pieces; beside a small max_tokens it is served", async () => {
    const prompt = "x".repeat(14_000);
    longest = 0;
    const refused = await ask({ model: "tiny", prompt, max_tokens: 4_000 });
    expect([refused.status, refused.body.error.code]).toEqual([400, "context_length_exceeded"]);
    expect(longest).toBeLessThanOrEqual(PIECE);
    unwatch();
    const served = await ask({ model: "tiny", prompt, max_tokens: 1 });
    expect([served.status, served.body.error, served.body.usage.prompt_tokens]).toEqual([200, undefined, prompt.length + 1]);
  });
});
