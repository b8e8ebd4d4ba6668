/**
 * LlamaEngine.warmUp (engine/llama.ts): each model's first evaluation, the slow one, run once ahead of the first
 * request, in a slot the scheduler lends; it takes no request's place, leaves nothing a request could reuse, and
 * dispose waits for it. Real engine on the tiny model.
 */
import { afterAll, expect, test } from "bun:test";
import { makeEngine, spyDecodes } from "../helpers";

const engine = await makeEngine({ parallel: 2, promptCache: true });
afterAll(async () => { await engine.dispose(); });

const call = (prompt: string, scope = "key-a") => ({ model: "tiny", prompt, sampling: { maxTokens: 2, temperature: 0 }, signal: new AbortController().signal, cacheScope: scope });

test("warms each model once with a real evaluation, then holds nothing: no slot, nothing reused by a request", async () => {
  let decodes = 0;
  let lastLogits: boolean[] = [];
  spyDecodes(engine, ({ logits }) => { decodes++; lastLogits = logits; });
  const first = await engine.warmUp();
  expect(decodes).toBeGreaterThan(0);
  // Its last token is decoded with its logits, as every request's is: an evaluation without them skipped the output
  // layer, and the first request still paid that part's first run (36 ms of a 48 ms first completion, 28 M, profiled).
  expect(lastLogits.at(-1)).toBe(true);
  expect(lastLogits.filter((x) => x === true)).toHaveLength(1); // the last token's only: a prompt's other tokens need none
  expect(first).toHaveLength(1);
  expect(first[0]!.model).toBe("tiny");
  expect("ms" in first[0]!).toBe(true);
  const after = decodes;
  expect(await engine.warmUp()).toBe(first); // the same run, not a second one
  expect(decodes).toBe(after);
  expect(engine.load()).toEqual({ active: 0, queued: 0 });
  // Its slot is given back (load() does not count a lent one): both slots can be lent again.
  const scheduler = (engine as unknown as { loaded: Map<string, { scheduler: { lend(): (() => void) | undefined } }> }).loaded.get("tiny")!.scheduler;
  const both = [scheduler.lend(), scheduler.lend()];
  expect(both.every((r) => r !== undefined)).toBe(true);
  for (const r of both) r!();
  // The warm-up's prompt ("Hi") is the start of this one: a request of any key still evaluates it whole.
  expect((await engine.complete(call("Hi there"))).cachedTokens).toBe(0);
  // Its own next request does reuse what it left (the cache works here, so the 0 above is the warm-up's doing).
  expect((await engine.complete(call("Hi there, again"))).cachedTokens).toBeGreaterThan(0);
});

test("with one slot and no queue (max-queue 0), a request arriving during the warm-up waits for it instead of a 503", async () => {
  const one = await makeEngine({ parallel: 1, maxQueue: 0 });
  try {
    const warming = one.warmUp(); // holds the only slot from here on (lent synchronously)
    expect(one.load()).toEqual({ active: 0, queued: 0 }); // not a request's: /ready and /metrics do not count it
    const r = await one.complete(call("hello"));
    expect(r.completionTokens).toBeGreaterThan(0);
    expect((await warming)[0]).toHaveProperty("ms");
  } finally {
    await one.dispose();
  }
});

test("a model already busy with requests is skipped, not queued behind them", async () => {
  const one = await makeEngine({ parallel: 1, maxQueue: 4 });
  try {
    let running: Promise<unknown> | undefined;
    await new Promise<void>((admitted) => { running = one.complete({ ...call("hello"), onAdmitted: admitted }); });
    try {
      expect(await one.warmUp()).toEqual([{ model: "tiny", skipped: "requests came first" }]);
    } finally {
      await running;
    }
  } finally {
    await one.dispose();
  }
});

test("a model a request has already used is skipped: warm already, and its kept prompt stays (parallel 1: the warm-up would clear it)", async () => {
  const one = await makeEngine({ parallel: 1, maxQueue: 4, promptCache: true });
  try {
    await one.complete(call("Hi there"));
    expect(await one.warmUp()).toEqual([{ model: "tiny", skipped: "requests came first" }]);
    expect((await one.complete(call("Hi there, again"))).cachedTokens).toBeGreaterThan(0);
  } finally {
    await one.dispose();
  }
});

test("dispose during the warm-up's evaluation waits for it, ends it without a result, and does not hang", async () => {
  const other = await makeEngine({ parallel: 1 });
  let disposing: Promise<void> | undefined;
  spyDecodes(other, () => { disposing ??= other.dispose(); }); // at its first decode step
  const result = await other.warmUp();
  await disposing;
  expect(disposing).toBeDefined();
  expect(result).toEqual([]);
  expect(other.ready()).toBe(false);
});
