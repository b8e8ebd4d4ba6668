/**
 * Long texts are counted in pieces before they are tokenized whole (src/engine/long-text.ts): llama.cpp's tokenizer
 * takes time quadratic in a run of characters the vocabulary lacks, on the event loop (red team: 199,000 CJK
 * characters in a chat froze the server 8.8 s per request, /health included). The tokenizer is watched, not timed:
 * a text that cannot fit must never reach it whole, and a text that fits is counted and served exactly as before.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { LlamaEngine } from "../../src/engine/llama";
import { countBeyond, PIECE } from "../../src/engine/long-text";
import { listenApp, makeApp } from "../helpers";

let base = "", key = "", engine: LlamaEngine, stop = async () => {};
/** The longest text given to the model's tokenizer since the last reset. */
let longest = 0;

beforeAll(async () => {
  const t = await makeApp({ config: { rateLimit: { rpm: 0, tpm: 0 } } });
  base = listenApp(t.app);
  key = t.key;
  engine = t.engine;
  // The native model's own call, under every path (model.tokenize, model.tokenizer, LlamaText.tokenize): its methods
  // are read-only, so the model is given a stand-in that passes everything through and notes each text's length.
  const model = (engine as unknown as { loaded: Map<string, { model: { _model: object } }> }).loaded.get("tiny")!.model;
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
  stop = async () => { await t.app.stop(true); await t.engine.dispose(); };
}, 120_000);
afterAll(() => stop());

async function post(path: string, json: unknown) {
  const r = await fetch(`${base}${path}`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(json) });
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
