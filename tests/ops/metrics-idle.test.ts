/**
 * The metrics registry does not wake the JS thread on a timer. prom-client's default metrics enable an event-loop
 * delay histogram sampled every 10 ms; under Bun that histogram is a stub (its metrics are removed), yet its timer
 * woke the thread 100 times a second, idle or between decode steps (issue 11: JS running during a decode step).
 * A child process makes the Metrics object and idles for a second; its main thread's voluntary context switches
 * (each one a sleep, so one per wake-up) are counted from /proc. Before the fix: ~100; the event-loop lag gauge
 * (setImmediate-based) still answers.
 */
import { describe, expect, test } from "bun:test";
import path from "node:path";

const root = path.join(import.meta.dir, "../..");
const child = `
import fs from "node:fs";
import { Metrics } from "./src/server/metrics";
const sleeps = () => Number(/voluntary_ctxt_switches:\\s+(\\d+)/.exec(fs.readFileSync("/proc/self/task/" + process.pid + "/status", "utf8"))[1]);
const m = new Metrics();
await Bun.sleep(200); // start-up work settles
const a = sleeps();
await Bun.sleep(1000);
const woke = sleeps() - a;
const text = await m.registry.metrics();
console.log(JSON.stringify({ woke, lag: /^nodejs_eventloop_lag_seconds \\S+$/m.test(text) }));
`;

describe.skipIf(process.platform !== "linux")("metrics registry at idle", () => {
  test("the JS thread is not woken every 10 ms; nodejs_eventloop_lag_seconds stays", () => {
    const r = Bun.spawnSync([process.execPath, "-e", child], { cwd: root, stderr: "pipe" });
    expect(r.exitCode, r.stderr.toString()).toBe(0);
    const out = JSON.parse(r.stdout.toString().trim().split("\n").at(-1)!) as { woke: number; lag: boolean };
    expect(out.lag).toBe(true);
    // One sleep per wake-up: a 10 ms timer makes ~100 in the second; idle, a handful (the sleep itself, GC).
    expect(out.woke).toBeLessThan(40);
  }, 60_000);
});
