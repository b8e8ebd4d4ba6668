/**
 * startKeepalive: EXTEND_TIMEOUT_USEC goes out at once and on every tick while the start makes progress, and
 * stops after a stall or stop(). The clock and the ticks are injected; the live proof (a start slower than
 * TimeoutStartSec survives) is tests/live/slow-start.test.ts.
 */
import { expect, test } from "bun:test";
import { startKeepalive } from "../../src/server/sd-notify";

function harness(windowMs: number) {
  let t = 0, tick: (() => void) | undefined, period = 0, cancelled = false;
  const sent: Record<string, string | number>[] = [];
  const k = startKeepalive({
    windowMs, env: { NOTIFY_SOCKET: "/nonexistent" }, now: () => t, send: (s) => { sent.push(s); return true; },
    every: (fn, ms) => { tick = fn; period = ms; return () => { cancelled = true; }; },
  });
  /** Moves the clock by one tick's period and runs the tick, as the interval would (not after cancel). */
  const step = () => { t += period; if (!cancelled) tick!(); };
  return { k, sent, step, fire: () => tick!(), period: () => period, cancelled: () => cancelled };
}

test("extends at once, keeps extending while there is progress, stops after a stall", () => {
  const h = harness(300);
  expect(h.period()).toBe(100); // a third of the window
  expect(h.sent).toEqual([{ EXTEND_TIMEOUT_USEC: 300_000, STATUS: "starting" }]);
  h.k.progress("hashing m.gguf: 10%");
  h.step();
  expect(h.sent).toHaveLength(2);
  expect(h.sent.at(-1)).toEqual({ EXTEND_TIMEOUT_USEC: 300_000, STATUS: "hashing m.gguf: 10%" });
  h.step(); h.step(); // 300 ms since the last progress: still inside the window
  expect(h.sent).toHaveLength(4);
  h.step(); // 400 ms without progress, longer than the window: a stalled start gets no more time
  h.step();
  expect(h.sent).toHaveLength(4);
  h.k.progress("loading");
  h.step();
  expect(h.sent.at(-1)).toEqual({ EXTEND_TIMEOUT_USEC: 300_000, STATUS: "loading" });
  h.k.stop();
  expect(h.cancelled()).toBe(true);
});

test("stop() ends the extensions; no NOTIFY_SOCKET sends nothing", () => {
  const h = harness(300);
  h.k.stop();
  const n = h.sent.length;
  h.k.progress("late");
  expect(h.cancelled()).toBe(true);
  h.fire(); // a tick already on its way when stop() came sends nothing either
  expect(h.sent.length).toBe(n);
  const sent: unknown[] = [];
  startKeepalive({ env: {}, send: (s) => { sent.push(s); return true; } }).stop();
  expect(sent).toEqual([]);
});
