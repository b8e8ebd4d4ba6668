/**
 * One decode step is one ubatch (src/engine/batch-order.ts): node-llama-cpp's context has one KV-cache stream per
 * sequence, and llama.cpp then puts only sequences with consecutive ids, in batch order, into one ubatch. So every
 * batch must list its sequences in ascending id order, and a request must get the lowest free id (neighbouring
 * ids for concurrent requests). Seen at llama.cpp's batch (node-llama-cpp's native context, spied through a Proxy;
 * nothing of ours is replaced). Before: batches followed the order the sequences sampled in (a 4-token step took
 * 10.9 ms inside llama_decode on the 28 M model instead of 5.6), and freed ids were reused in the order freed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { LlamaContext } from "node-llama-cpp";
import type { LlamaEngine } from "../../src/engine/llama";
import { listenApp, makeApp, makeEngine } from "../helpers";

const NO_END = { "2": -100, "260": -100 }; // every stream runs to max_tokens
let base = "", key = "", engine: LlamaEngine, stop = async () => {};

beforeAll(async () => {
  const t = await makeApp({ config: { parallel: 4, rateLimit: { rpm: 0, tpm: 0, maxConcurrent: 0 } } });
  base = listenApp(t.app);
  ({ key, engine } = t);
  stop = async () => { await t.app.stop(true); await t.engine.dispose(); };
}, 120_000);
afterAll(() => stop());

const contextOf = () => (engine as unknown as { loaded: Map<string, { context: LlamaContext & { _ctx: Record<string, unknown> } }> }).loaded.get("tiny")!.context;

async function stream(prompt: string, maxTokens: number): Promise<void> {
  const r = await fetch(`${base}/v1/completions`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt, max_tokens: maxTokens, temperature: 0, logit_bias: NO_END, stream: true }) });
  expect(r.status).toBe(200);
  await r.text();
}

/** The sequence ids of each llama_decode batch, in batch order, while `fn` runs. */
async function batches(fn: () => Promise<unknown>): Promise<number[][]> {
  const context = contextOf(), native = context._ctx, out: number[][] = [];
  context._ctx = new Proxy(native, {
    get(t, k) {
      const v = t[k as string];
      if (k === "initBatch") return (n: number) => { out.push([]); return (v as (n: number) => unknown).call(t, n); };
      if (k === "addToBatch") return (seq: number, ...rest: unknown[]) => { out.at(-1)!.push(seq); return (v as (...a: unknown[]) => unknown).call(t, seq, ...rest); };
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  try { await fn(); return out; } finally { context._ctx = native; }
}

describe("decode batches in sequence-id order", () => {
  test("4 concurrent streams: every batch lists its sequences in ascending id order", async () => {
    // Different prompt lengths and token counts, so the streams sample and come back in varying order.
    const prompts = ["Once upon a time there was", "hi", "the json key is", "x y z w v u t s"];
    const seen = await batches(() => Promise.all(prompts.map((p, i) => stream(p, 24 + 8 * i))));
    const steps = seen.filter((b) => b.length > 1);
    expect(steps.length).toBeGreaterThan(20);
    expect(steps.filter((b) => b.some((id, i) => i > 0 && id <= b[i - 1]!))).toEqual([]);
    // Four neighbouring ids while all four run (0..3: the context's only ids), so each such step is one ubatch.
    expect(steps.filter((b) => b.length === 4).every((b) => b.join() === "0,1,2,3")).toBe(true);
  }, 120_000);

  test("a new sequence gets the lowest free id, whatever order the others were freed in", async () => {
    // A context of its own: the app's keeps its sequences between requests (sequence-pool.ts), so none is free there.
    const own = await makeEngine({ parallel: 4 });
    const context = (own as unknown as { loaded: Map<string, { context: LlamaContext }> }).loaded.get("tiny")!.context;
    const held = [0, 1, 2, 3].map(() => context.getSequence());
    const ids = held.map((s) => (s as unknown as { _sequenceId: number })._sequenceId).sort();
    expect(ids).toEqual([0, 1, 2, 3]);
    for (const i of [2, 0, 3, 1]) await held.find((s) => (s as unknown as { _sequenceId: number })._sequenceId === i)!.dispose();
    const next = [context.getSequence(), context.getSequence()];
    try {
      expect(next.map((s) => (s as unknown as { _sequenceId: number })._sequenceId)).toEqual([0, 1]); // before: 2, 0
    } finally {
      for (const s of next) await s.dispose();
      await own.dispose();
    }
  }, 60_000);
});
