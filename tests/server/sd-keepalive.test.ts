/**
 * startKeepalive: EXTEND_TIMEOUT_USEC goes out at once and on every tick while the start makes progress, and
 * stops after a stall or stop(). The clock is injected; the live proof (a start slower than TimeoutStartSec
 * survives) is tests/live/slow-start.test.ts.
 */
import { expect, test } from "bun:test";
import { startKeepalive } from "../../src/server/sd-notify";

function harness(windowMs: number) {
  let t = 0;
  const sent: Record<string, string | number>[] = [];
  const k = startKeepalive({ windowMs, env: { NOTIFY_SOCKET: "/nonexistent" }, now: () => t, send: (s) => { sent.push(s); return true; } });
  return { k, sent, advance: (ms: number) => { t += ms; } };
}

test("extends at once, keeps extending while there is progress, stops after a stall", async () => {
  const h = harness(300);
  expect(h.sent).toEqual([{ EXTEND_TIMEOUT_USEC: 300_000, STATUS: "starting" }]);
  h.k.progress("hashing m.gguf: 10%");
  const before = h.sent.length;
  await new Promise((r) => setTimeout(r, 250)); // at least one tick (every 100 ms) with fresh progress
  expect(h.sent.length).toBeGreaterThan(before);
  expect(h.sent.at(-1)).toEqual({ EXTEND_TIMEOUT_USEC: 300_000, STATUS: "hashing m.gguf: 10%" });
  h.advance(301); // no progress for longer than the window: a stalled start gets no more time
  const stalled = h.sent.length;
  await new Promise((r) => setTimeout(r, 250));
  expect(h.sent.length).toBe(stalled);
  h.k.stop();
});

test("stop() ends the extensions; no NOTIFY_SOCKET sends nothing", async () => {
  const h = harness(300);
  h.k.stop();
  const n = h.sent.length;
  h.k.progress("late");
  await new Promise((r) => setTimeout(r, 250));
  expect(h.sent.length).toBe(n);
  const sent: unknown[] = [];
  startKeepalive({ env: {}, send: (s) => { sent.push(s); return true; } }).stop();
  expect(sent).toEqual([]);
});
