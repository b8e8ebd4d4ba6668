/**
 * Burst gathering's schedule (engine/arrivals.ts) on its own: an idle context's first decode waits for requests
 * on their way, a busy one never does, and a request whose end is never reported stops counting.
 * (The whole path, through HTTP, is in batching.test.ts: a burst's prompts in one step.)
 */
import { expect, test } from "bun:test";
import { Arrivals, gatherSchedule } from "../../src/engine/arrivals";

/** Resolves once `cond` holds (polled each turn), or fails after `ms`. */
async function until(cond: () => boolean, ms = 10_000) {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error("deadline passed");
    await new Promise((r) => setImmediate(r));
  }
}
const turns = async (n: number) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

test("idle: the first decode waits until the announced request is queued", async () => {
  const arrivals = new Arrivals();
  const done = arrivals.expect();
  let dispatched = false;
  gatherSchedule(arrivals, () => true, 0, 60_000)(() => { dispatched = true; });
  await turns(20);
  expect(dispatched).toBe(false); // still on its way
  done();
  await until(() => dispatched);
});

test("busy: a decode never waits for a newcomer", async () => {
  const arrivals = new Arrivals();
  arrivals.expect();
  let dispatched = false;
  gatherSchedule(arrivals, () => false, 0, 60_000)(() => { dispatched = true; });
  await until(() => dispatched, 1000);
});

test("a request announced long ago and never reported stops counting", async () => {
  const arrivals = new Arrivals(20);
  arrivals.expect(); // its end never comes
  expect(arrivals.count).toBe(1);
  await until(() => arrivals.count === 0);
  let dispatched = false;
  gatherSchedule(arrivals, () => true, 0, 60_000)(() => { dispatched = true; });
  await until(() => dispatched);
});

test("done is idempotent", () => {
  const arrivals = new Arrivals();
  const a = arrivals.expect();
  arrivals.expect();
  a(); a();
  expect(arrivals.count).toBe(1);
});
