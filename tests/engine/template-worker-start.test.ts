/**
 * The chat-template worker's start. The pool (template-bound.ts) and the synchronous renderer (template-sync.ts)
 * post the worker's init right after `new Worker`; Bun 1.4 drops a message that reaches a worker before it has a
 * message handler, and node-llama-cpp's module graph has a top-level await. A fresh-clone CI run (2 cores, loaded)
 * lost the init now and then: the worker never became ready and the first chat was refused after 60 s
 * (integrity-template's from-source test). Here a preload (worker-start/slow-tla.ts) widens that await by 300 ms,
 * so the race is lost every time by a worker that installs its handler late, and the real entry must still start.
 */
import { afterEach, expect, test } from "bun:test";
import path from "node:path";
import { CHATML_TEMPLATE } from "../../src/engine/tiny-model";
import type { TemplateInit, TemplateJob, TemplateResult } from "../../src/engine/template-render";
import { HEADER_BYTES, SLOT } from "../../src/engine/template-state";

const preload = path.join(import.meta.dir, "worker-start", "slow-tla.ts");
const entry = path.join(import.meta.dir, "..", "..", "src", "engine", "template-worker.ts");
const lateHandler = path.join(import.meta.dir, "worker-start", "late-handler.ts");
const workers: Worker[] = [];
afterEach(() => { for (const w of workers.splice(0)) w.terminate(); });

type Reply = TemplateResult | { ready: true } | { loaded: true };
const job = (id: number): TemplateJob => ({ id, chatHistory: [{ type: "user", text: "hello" }, { type: "model", response: [] }], maxChars: 4_000 });

/** Starts `file` as the engine does (init posted at once) and returns its replies as they come, in order. */
function start(file: string, init: TemplateInit) {
  const w = new Worker(file, { preload: [preload] });
  workers.push(w);
  const replies: Reply[] = [];
  const waiters = new Set<() => void>();
  w.addEventListener("message", (e: MessageEvent<Reply>) => { replies.push(e.data); for (const check of [...waiters]) check(); });
  w.postMessage(init);
  /** The first reply that `match` accepts, as soon as it comes; the deadline only bounds a worker that never answers. */
  const next = (match: (r: Reply) => boolean) => new Promise<Reply>((resolve, reject) => {
    const check = () => {
      const found = replies.find(match);
      if (found) { clearTimeout(timer); waiters.delete(check); resolve(found); }
    };
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no such reply within 30 s; got ${JSON.stringify(replies)}`)); }, 30_000);
    waiters.add(check);
    check();
  });
  return { w, replies, next };
}

test("control: a worker whose handler is installed after node-llama-cpp's top-level await loses the init posted at start", async () => {
  const { w, replies, next } = start(lateHandler, { template: CHATML_TEMPLATE, tokens: [] });
  await next((r) => "loaded" in r);
  // Messages are delivered in order: had the init been kept, its `ready` would come before this job's answer.
  w.postMessage(job(7));
  const answer = await next((r) => "id" in r);
  expect(answer).toMatchObject({ id: 7, error: "the chat template could not be loaded" });
  expect(replies.some((r) => "ready" in r)).toBe(false);
});

test("the worker's entry keeps the init posted at start while that await is pending: it becomes ready and renders", async () => {
  const { w, next } = start(entry, { template: CHATML_TEMPLATE, tokens: [] });
  await next((r) => "ready" in r);
  w.postMessage(job(1));
  const answer = await next((r) => "id" in r) as { id: number; chars: number };
  expect(answer.id).toBe(1);
  expect(answer.chars).toBeGreaterThan("hello".length);
});

test("the same for the synchronous renderer's init: its buffer's READY slot is set", async () => {
  const sync = new SharedArrayBuffer(HEADER_BYTES + 65_536);
  const slots = new Int32Array(sync, 0, HEADER_BYTES / 4);
  const { next } = start(entry, { template: CHATML_TEMPLATE, tokens: [], sync });
  await next((r) => "ready" in r);
  expect(Atomics.load(slots, SLOT.READY)).toBe(1);
});
