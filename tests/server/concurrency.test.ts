/** Parallel generation, the bounded queue, and cancellation on client disconnect — over real HTTP. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { Scheduler } from "../../src/engine/scheduler";
import { CancelledError, QueueFullError } from "../../src/errors";
import { listenApp, makeApp, memoryLogger } from "../helpers";

describe("Scheduler", () => {
  test("hands slots out, queues up to the limit, fails fast beyond it", async () => {
    const s = new Scheduler(1, 1);
    const signal = new AbortController().signal;
    const first = await s.acquire(signal);
    let secondGot = false;
    const second = s.acquire(signal).then((r) => { secondGot = true; return r; });
    await expect(s.acquire(signal)).rejects.toBeInstanceOf(QueueFullError);
    expect(s.stats()).toEqual({ active: 1, queued: 1 });
    expect(secondGot).toBe(false);
    first();
    (await second)();
    expect(s.stats()).toEqual({ active: 0, queued: 0 });
  });
  test("a lent slot (the warm-up's) is nobody's place: not counted, and the request it would have gone to waits for it even with no line", async () => {
    const s = new Scheduler(1, 0);
    const signal = new AbortController().signal;
    const lent = s.lend()!;
    expect(lent).toBeDefined();
    expect(s.stats()).toEqual({ active: 0, queued: 0 });
    expect(s.lend()).toBeUndefined(); // no slot free
    let got = false;
    const waiting = s.acquire(signal).then((r) => { got = true; return r; });
    expect(s.stats()).toEqual({ active: 0, queued: 1 });
    await expect(s.acquire(signal)).rejects.toBeInstanceOf(QueueFullError); // the line is still maxQueue beyond that
    expect(got).toBe(false);
    lent();
    lent(); // a second call changes nothing
    const release = await waiting;
    expect(s.stats()).toEqual({ active: 1, queued: 0 });
    expect(s.lend()).toBeUndefined(); // the request holds it
    release();
    expect(s.stats()).toEqual({ active: 0, queued: 0 });
    // Released with nobody waiting, the slot is free again: lent, given back, lent again.
    const again = s.lend()!;
    again();
    expect(s.stats()).toEqual({ active: 0, queued: 0 });
    (await s.acquire(signal))();
  });
  test("watchers hear every change of the counts", async () => {
    const s = new Scheduler(1, 1);
    const seen: string[] = [];
    const stop = s.watch(() => seen.push(JSON.stringify(s.stats())));
    const c = new AbortController();
    const release = await s.acquire(c.signal);
    const waiter = new AbortController();
    const waiting = s.acquire(waiter.signal);
    waiter.abort();
    await expect(waiting).rejects.toBeInstanceOf(CancelledError);
    release();
    stop();
    (await s.acquire(c.signal))();
    expect(seen).toEqual(['{"active":1,"queued":0}', '{"active":1,"queued":1}', '{"active":1,"queued":0}', '{"active":0,"queued":0}']);
  });
  test("an aborted waiter leaves the line at once", async () => {
    const s = new Scheduler(1, 4);
    const release = await s.acquire(new AbortController().signal);
    const c = new AbortController();
    const waiting = s.acquire(c.signal);
    c.abort();
    await expect(waiting).rejects.toBeInstanceOf(CancelledError);
    expect(s.stats().queued).toBe(0);
    release();
  });
});

describe("over HTTP with one sequence", () => {
  let ctx: Awaited<ReturnType<typeof makeApp>>;
  let client: OpenAI;
  const { log, lines, line } = memoryLogger();
  beforeAll(async () => {
    ctx = await makeApp({ config: { parallel: 1, maxQueue: 0 }, log });
    client = new OpenAI({ apiKey: ctx.key, baseURL: `${listenApp(ctx.app)}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await ctx.app.stop(true);
    await ctx.engine.dispose();
  });

  test("aborting a stream mid-way frees the slot for the next request", async () => {
    const abort = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "tiny", messages: [{ role: "user", content: "tell a long story" }], max_tokens: 1800, stream: true, temperature: 0 },
      { signal: abort.signal });
    let seen = 0;
    try {
      for await (const _ of stream) if (++seen === 3) abort.abort();
    } catch { /* the SDK throws on abort */ }
    // With one sequence and no queue, this succeeds only once the aborted generation has let go of the slot, and
    // at the first try once the slot is free: the sequence is handed back before the slot is.
    // (Greedy decoding keeps these long generations deterministic: the tiny model's greedy text never hits EOS early.)
    await ctx.engine.whenLoad((l) => l.active === 0);
    const next = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
    expect(next.choices[0]!.message.content).toBeDefined();
    // The aborted request's log line is written when its stream is torn down.
    const aborted = await line((l) => l.msg === "request" && l.status === 499);
    expect(aborted.completionTokens).toBeGreaterThan(0);
    expect(aborted.completionTokens).toBeLessThan(1800);
    expect(ctx.engine.load()).toEqual({ active: 0, queued: 0 });
  });

  test("a non-streaming client that disconnects cancels its generation too", async () => {
    const abort = new AbortController();
    const pending = client.completions.create({ model: "tiny", prompt: "long", max_tokens: 1800, temperature: 0 }, { signal: abort.signal })
      .catch((e) => e);
    await ctx.engine.whenLoad((l) => l.active > 0); // generation has the slot
    const before = lines.length;
    abort.abort();
    await pending;
    await ctx.engine.whenLoad((l) => l.active === 0);
    const next = await client.completions.create({ model: "tiny", prompt: "x", max_tokens: 2 });
    expect(next.choices[0]!.text).toBeDefined();
    const cancelled = await line((l) => l.status === 499, before);
    expect(cancelled.completionTokens).toBeLessThan(1800);
  });

  test("a full queue answers 503 with Retry-After", async () => {
    const abort = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "tiny", messages: [{ role: "user", content: "go" }], max_tokens: 1800, stream: true, temperature: 0 }, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    // The role chunk goes out before the slot is taken; the first text chunk proves generation holds it.
    while (!(await it.next()).value?.choices[0]?.delta.content);
    const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 2 }).withResponse()
      .then(() => null, (e) => e);
    abort.abort();
    expect(r).toBeInstanceOf(OpenAI.APIError);
    expect(r.status).toBe(503);
    expect(r.code).toBe("queue_full");
    expect(r.headers.get("retry-after")).toBe("1");
  });

  test("refusals decidable before the first byte keep their status when streaming: queue full 503, context 400", async () => {
    await ctx.engine.whenLoad((l) => l.active === 0); // the previous test's stream lets go
    const abort = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "tiny", messages: [{ role: "user", content: "go" }], max_tokens: 1800, stream: true, temperature: 0 }, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    while (!(await it.next()).value?.choices[0]?.delta.content);
    try {
      const full = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 2, stream: true })
        .then(() => null, (e) => e);
      expect(full).toBeInstanceOf(OpenAI.APIError);
      expect(full.status).toBe(503);
      expect(full.code).toBe("queue_full");
      expect(full.headers.get("retry-after")).toBe("1");
    } finally {
      abort.abort();
    }
    const long = await client.completions.create({ model: "tiny", prompt: "word ".repeat(1500), max_tokens: 1000, stream: true })
      .then(() => null, (e) => e);
    expect(long.status).toBe(400);
    expect(long.code).toBe("context_length_exceeded");
    expect(long.param).toBe("prompt");
  });

  test("embeddings wait in the same bounded line: a full line answers 503", async () => {
    const first = client.embeddings.create({ model: "tiny", input: Array.from({ length: 200 }, (_, i) => `text number ${i}`) });
    await ctx.engine.whenLoad((l) => l.active > 0);
    const second = await client.embeddings.create({ model: "tiny", input: "x" }).then(() => null, (e) => e);
    expect((await first).data).toHaveLength(200);
    expect(second).toBeInstanceOf(OpenAI.APIError);
    expect(second.status).toBe(503);
    expect(second.code).toBe("queue_full");
  });
});

describe("with two sequences", () => {
  test("a burst of streams on a fresh server never finds the sequences taken (each one is handed back before its slot)", async () => {
    for (let trial = 0; trial < 3; trial++) {
      const ctx = await makeApp({ config: { parallel: 2, maxQueue: 8 } });
      const client = new OpenAI({ apiKey: ctx.key, baseURL: `${listenApp(ctx.app)}/v1`, maxRetries: 0 });
      try {
        const results = await Promise.allSettled(Array.from({ length: 4 }, async (_, i) => {
          const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: `hi ${i}` }], max_tokens: 6, stream: true });
          let text = "";
          for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
          return text;
        }));
        expect(results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      } finally {
        await ctx.app.stop(true);
        await ctx.engine.dispose();
      }
    }
  });


  test("a second request generates while a long one is still running (batched, not queued)", async () => {
    const ctx = await makeApp({ config: { parallel: 2, maxQueue: 0 } });
    const client = new OpenAI({ apiKey: ctx.key, baseURL: `${listenApp(ctx.app)}/v1`, maxRetries: 0 });
    try {
      const abort = new AbortController();
      const long = await client.chat.completions.create(
        { model: "tiny", messages: [{ role: "user", content: "go" }], max_tokens: 1800, stream: true, temperature: 0 }, { signal: abort.signal });
      const it = long[Symbol.asyncIterator]();
      while (!(await it.next()).value?.choices[0]?.delta.content); // the long one holds a sequence
      // maxQueue 0: this would be a 503 if it had to wait for the long one.
      const short = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
      expect(short.choices[0]!.message.content).toBeDefined();
      expect(ctx.engine.load().active).toBe(1); // the long one is still generating
      abort.abort();
      await ctx.engine.whenLoad((l) => l.active === 0);
    } finally {
      await ctx.app.stop(true);
      await ctx.engine.dispose();
    }
  });
});
