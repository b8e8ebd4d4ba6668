/**
 * LlamaEngine.warmUp (engine/llama.ts): each model's first evaluation, the slow one, run once ahead of the first
 * request; it leaves nothing a request could reuse, and dispose ends it first. Real engine on the tiny model.
 */
import { afterAll, expect, test } from "bun:test";
import { makeEngine } from "../helpers";

const engine = await makeEngine({ parallel: 2, promptCache: true });
afterAll(async () => { await engine.dispose(); });

const call = (prompt: string) => ({ model: "tiny", prompt, sampling: { maxTokens: 2, temperature: 0 }, signal: new AbortController().signal, cacheScope: "key-a" });

test("warms each model once, then holds nothing: no slot taken, nothing reused by a request", async () => {
  const first = await engine.warmUp();
  expect(first).toHaveLength(1);
  expect(first[0]!.model).toBe("tiny");
  expect("ms" in first[0]! && first[0].ms >= 0).toBe(true);
  expect(await engine.warmUp()).toBe(first); // the same run, not a second one
  expect(engine.load()).toEqual({ active: 0, queued: 0 });
  // The warm-up's prompt ("Hi") is the start of this one: a request of any key still evaluates it whole.
  expect((await engine.complete(call("Hi there"))).cachedTokens).toBe(0);
  // Its own next request does reuse what it left (the cache works here, so the 0 above is the warm-up's doing).
  expect((await engine.complete(call("Hi there, again"))).cachedTokens).toBeGreaterThan(0);
});

test("dispose while the warm-up runs ends it and resolves: no hang, no error", async () => {
  const other = await makeEngine({ parallel: 1 });
  const warming = other.warmUp();
  await other.dispose();
  const result = await warming;
  // Ended before or after its evaluation, it reports no failure (dispose came first: nothing to report).
  expect(result.every((r) => !("error" in r))).toBe(true);
  expect(other.ready()).toBe(false);
});
