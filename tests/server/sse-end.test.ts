/**
 * A stream's end is reported when the client has taken the last event, not when it was queued (server/openai/sse.ts):
 * a client that stopped reading with megabytes still queued (under the backlog bound) was later cut by the idle
 * timeout, yet logged and audited as a complete 200 (load run). Here the client is the Response body's own reader.
 */
import { expect, test } from "bun:test";
import { sseResponse } from "../../src/server/openai/sse";

/** A stream of `events` events of ~2 KB each, everything sent at once; what onFinish got, and when run() was done. */
function bigStream(events: number) {
  const finished: unknown[] = [];
  let ran!: () => void;
  const done = new Promise<void>((r) => { ran = r; });
  const res = sseResponse({
    run: async (send) => { for (let i = 0; i < events; i++) send({ i, pad: "x".repeat(2000) }); ran(); },
    onCancel: () => {}, errorEvent: () => undefined, onFinish: (e) => finished.push(e ?? "complete"), maxBacklog: 64 << 20,
  });
  return { res, finished, done };
}

/** Lets the stream's own promise callbacks (run's settling, finish) go first. */
const settle = () => new Promise<void>((r) => setImmediate(r));

test("with ~400 KB queued and nobody reading, the end waits; once the client has read it all, the stream ends complete", async () => {
  const { res, finished, done } = bigStream(200);
  await done;
  await settle();
  expect(finished).toEqual([]);
  const text = await res.text();
  expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
  expect(finished).toEqual(["complete"]);
});

test("a client that goes away with the end still queued: the stream ends cut (logged and audited as cancelled), not complete", async () => {
  const { res, finished, done } = bigStream(200);
  await done;
  await settle();
  const reader = res.body!.getReader();
  await reader.read(); // takes one chunk, then leaves
  await reader.cancel();
  expect(finished).toHaveLength(1);
  expect(String(finished[0])).toContain("went away before the end of the stream reached it");
});

test("a stream that fails ends at once with its error (nothing to wait for), its error event queued", async () => {
  const finished: unknown[] = [];
  const failure = new Error("engine failed");
  const res = sseResponse({
    run: async (send) => { send({ i: 0 }); throw failure; },
    onCancel: () => {}, errorEvent: () => ({ error: { message: "x" } }), onFinish: (e) => finished.push(e), maxBacklog: 64 << 20,
  });
  await settle();
  expect(finished).toEqual([failure]);
  expect(await res.text()).toContain('"error"');
});

test("a burst past the backlog bound written in one go is not a stalled client: a reader taking it at once gets it all", async () => {
  // Second fix-attack run: a Responses stream's closing events repeat the whole answer's logprobs (4 × 2.6 MB), written
  // in one go; the bound (8 MiB) cut the stream for a client reading at full speed. Here 3 × 1 MB past a 1 MiB bound.
  const finished: unknown[] = [];
  const res = sseResponse({
    run: async (send) => { for (let i = 0; i < 3; i++) send({ i, pad: "x".repeat(1 << 20) }); },
    onCancel: () => {}, errorEvent: () => undefined, onFinish: (e) => finished.push(e ?? "complete"), maxBacklog: 1 << 20,
  });
  const text = await res.text();
  expect(text.split("\n\n").filter(Boolean)).toHaveLength(4);
  expect(finished).toEqual(["complete"]);
});
