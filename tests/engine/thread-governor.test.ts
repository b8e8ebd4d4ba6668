/**
 * The adaptive thread policy (default `threads: 0`): the count follows the CPU left free by other processes, between
 * 1 and the usable CPUs. Decisions are driven with an injected clock and CPU-time sources; the /proc parsers get
 * fixture text; the real engine shows node-llama-cpp uses the governed count for its next decode steps.
 */
import { describe, expect, test } from "bun:test";
import { LlamaCompletion } from "node-llama-cpp";
import { Arrivals } from "../../src/engine/arrivals";
import { loadModel, openLlama } from "../../src/engine/llama-load";
import { GOVERNOR_MAX_BACKOFF, ThreadGovernor, threadsFor, type SourceChange, type ThreadChange } from "../../src/engine/thread-governor";
import { governThreads, withFullThreads } from "../../src/engine/thread-policy";
import { busyTicks, ownTicks, parseCpuList, procSources, type CpuTimeSources } from "../../src/engine/thread-sources";
import { memoryLogger, tinyModel, until } from "../helpers";

/** CPU-time sources a test moves by hand: `others` and `own` CPUs busy over the next `ms`. */
function fakeCpu() {
  let now = 0, busy = 0, own = 0, readable = true;
  const src: CpuTimeSources = { now: () => now, busySeconds: () => (readable ? busy : undefined), ownSeconds: () => (readable ? own : undefined) };
  return {
    src,
    pass(ms: number, others: number, ours = 0) { now += ms; busy += ((others + ours) * ms) / 1000; own += (ours * ms) / 1000; },
    hide() { readable = false; },
    show() { readable = true; },
  };
}

describe("how many threads for how busy the neighbours are", () => {
  test("round(free CPUs), never below 1 nor above the usable CPUs", () => {
    const two = { cpus: 2, max: 2 };
    expect([0, 0.3, 0.49, 0.67, 1, 1.6, 2].map((o) => threadsFor(two, o))).toEqual([2, 2, 2, 1, 1, 1, 1]);
    // A 1-CPU quota on 2 CPUs: one thread even when idle.
    expect(threadsFor({ cpus: 2, max: 1 }, 0)).toBe(1);
    // 8 CPUs allowed, quota of 4: at most 4; 5.2 busy elsewhere leaves 3.
    expect([0, 3, 5.2, 9].map((o) => threadsFor({ cpus: 8, max: 4 }, o))).toEqual([4, 4, 3, 1]);
  });

  test("a burner next to 2 spinning threads drops one; when it stops, the thread comes back", () => {
    const cpu = fakeCpu();
    const applied: number[] = [], changes: ThreadChange[] = [];
    const g = new ThreadGovernor({ max: 2, cpus: 2, windowMs: 250 }, cpu.src, (t, c) => { applied.push(t); if (c) changes.push(c); });
    expect(applied).toEqual([2]); // the full count from the start
    cpu.pass(100, 1, 1.33);
    expect(g.update()).toBe(2); // within the window: no decision yet
    cpu.pass(150, 0.67, 1.33); // a burner gets ~2/3 of a CPU next to our 2 spinning threads
    expect(g.update()).toBe(1);
    expect(changes.at(-1)).toMatchObject({ threads: 1, from: 2, windowMs: 250 });
    expect(changes.at(-1)!.othersCpu).toBeGreaterThan(0.5);
    cpu.pass(300, 1, 1); // now it has a whole CPU: stay at 1
    expect(g.update()).toBe(1);
    cpu.pass(300, 0.1, 1); // gone
    expect(g.update()).toBe(2);
    expect(applied).toEqual([2, 1, 2]);
  });

  test("never more than max, even when idle; unreadable sources keep the full (fixed) count", () => {
    const cpu = fakeCpu();
    const applied: number[] = [];
    const g = new ThreadGovernor({ max: 1, cpus: 4, windowMs: 250 }, cpu.src, (t) => applied.push(t));
    cpu.pass(1000, 0);
    expect(g.update()).toBe(1);
    const hidden = fakeCpu();
    hidden.hide();
    const h = new ThreadGovernor({ max: 3, cpus: 3 }, hidden.src, () => {});
    hidden.pass(1000, 3);
    expect([h.unavailable, h.update()]).toEqual([true, 3]);
    expect(applied).toEqual([1]);
  });
});

describe("a CPU-load source that fails", () => {
  // Before: one failed read set the fixed count for the rest of the process, with no log line after the start.
  test("gives the fixed count while failing, retries with back-off, and governs again once it reads", () => {
    const cpu = fakeCpu();
    const applied: number[] = [], sources: SourceChange[] = [];
    let reads = 0;
    const src: CpuTimeSources = { ...cpu.src, busySeconds: () => { reads++; return cpu.src.busySeconds(); } };
    const g = new ThreadGovernor({ max: 2, cpus: 2, windowMs: 250 }, src, (t) => applied.push(t), (c) => sources.push(c));
    cpu.pass(250, 1, 1);
    expect(g.update()).toBe(1); // a neighbour takes a CPU
    cpu.hide();
    cpu.pass(250, 1, 1);
    expect([g.update(), g.unavailable]).toEqual([2, true]); // unreadable: the fixed (full) count
    expect(sources).toEqual([{ readable: false, failures: 1, retryMs: 250 }]);
    // Tries again after 1, 2, 4 windows: not before.
    const tries: number[] = [];
    for (let t = 0; t < 16; t++) { const r = reads; cpu.pass(125, 1, 1); g.update(); if (reads > r) tries.push((t + 1) * 125); }
    expect(tries).toEqual([250, 750, 1750]);
    expect(g.failures).toBe(4);
    expect(sources).toHaveLength(1); // the loss is reported once, not per failed try
    cpu.show();
    cpu.pass(2000, 1, 1);
    expect(g.update()).toBe(2); // back: this window only sets the baseline
    expect(sources.at(-1)).toEqual({ readable: true, failures: 4 });
    cpu.pass(250, 1, 1);
    expect([g.update(), g.unavailable]).toEqual([1, false]); // governing again
    expect(applied).toEqual([2, 1, 2, 1]);
  });

  test("the wait between tries stops growing at GOVERNOR_MAX_BACKOFF windows; a later loss starts from one window", () => {
    const cpu = fakeCpu();
    cpu.hide();
    const sources: SourceChange[] = [];
    let reads = 0;
    const src: CpuTimeSources = { ...cpu.src, busySeconds: () => { reads++; return cpu.src.busySeconds(); } };
    const g = new ThreadGovernor({ max: 2, cpus: 2, windowMs: 250 }, src, () => {}, (c) => sources.push(c));
    expect(sources).toEqual([{ readable: false, failures: 1, retryMs: 250 }]); // unreadable from the start
    const at: number[] = [];
    for (let t = 1; t <= 4000; t++) { const r = reads; cpu.pass(25, 0); g.update(); if (reads > r) at.push(t * 25); }
    const gaps = at.slice(1).map((x, i) => x - at[i]!);
    expect(gaps.slice(0, 6)).toEqual([500, 1000, 2000, 4000, 8000, 16_000]);
    expect(Math.max(...gaps)).toBe(GOVERNOR_MAX_BACKOFF * 250);
    cpu.show();
    cpu.pass(16_000, 0);
    g.update();
    expect(g.unavailable).toBe(false);
    cpu.hide();
    cpu.pass(250, 0);
    g.update();
    expect(sources.at(-1)).toMatchObject({ readable: false, retryMs: 250 });
  });

  test("the log says it once: a warning at the first loss, info at the first recovery, debug after", async () => {
    const { log, lines } = memoryLogger();
    const llama = await openLlama({ models: [], threads: 2, ctxSize: 512, parallel: 1, maxQueue: 4, gpu: false as const, log });
    try {
      const cpu = fakeCpu();
      cpu.hide();
      const g = governThreads(llama, 2, log, cpu.src, 2);
      for (let i = 0; i < 3; i++) {
        cpu.show(); cpu.pass(20_000, 0); g.update();
        cpu.hide(); cpu.pass(20_000, 0); g.update();
      }
      // Three losses and three recoveries; the logger is at info, so the later ones (debug) are not written.
      const said = lines.filter((l) => /cpu load/.test(String(l.msg))).map((l) => `${l.level} ${String(l.msg).split(/[:(]/)[0]!.trim()}`);
      expect(said).toEqual(["40 cpu load unreadable", "30 cpu load readable again"]);
      expect(g.unavailable).toBe(true);
      expect(lines.find((l) => l.level === 40)).toMatchObject({ threads: 2, failures: 1, retryMs: 250 });
    } finally {
      await llama.dispose();
    }
  }, 60_000);
});

describe("reading /proc", () => {
  test("cpu lists, busy ticks over the allowed CPUs only, own ticks with an awkward command name", () => {
    expect(parseCpuList("0-2,5,7-8\n")).toEqual([0, 1, 2, 5, 7, 8]);
    const stat = "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 10 1 5 100 7 2 3 4 0 0\ncpu1 20 0 10 50 0 0 0 0 0 0\ncpu2 1000 0 0 0 0 0 0 0 0 0\nintr 1 2\n";
    expect(busyTicks(stat, new Set([0, 1]))).toBe(10 + 1 + 5 + 2 + 3 + 4 + 20 + 10); // idle and iowait left out, cpu2 not ours
    expect(busyTicks(stat, new Set([9]))).toBeUndefined();
    expect(ownTicks("4242 (a b) c) S 1 2 3 4 5 6 7 8 9 10 123 45 0 0 20 0 9")).toBe(168); // utime, stime: fields 14, 15
  });

  test("live: this process's own time grows while it computes, and the busy time covers it", async () => {
    const src = procSources();
    const own0 = src.ownSeconds()!, busy0 = src.busySeconds()!;
    expect(own0).toBeGreaterThanOrEqual(0);
    let x = 0;
    // Half a second of CPU: /proc/stat charges whole timer ticks to whatever runs at each tick while our own time
    // is measured exactly, so over the 0.05 s this once waited for a fresh-clone CI run saw own +5 ticks, busy +<4.
    await until(() => { for (let i = 0; i < 2e6; i++) x += i; return src.ownSeconds()! >= own0 + 0.5 ? true : undefined; }, 60_000, "own CPU time to grow");
    expect(x).toBeGreaterThan(0);
    // Compare whole ticks: seconds are ticks / 100, and 4 ticks once came out as 0.039999999999054.
    const ownGrew = Math.round((src.ownSeconds()! - own0) * 100), busyGrew = Math.round((src.busySeconds()! - busy0) * 100);
    expect({ ownGrew, busyGrew, covered: busyGrew >= ownGrew * 0.8 }).toMatchObject({ covered: true });
  }, 90_000);
});

describe("node-llama-cpp follows the governor", () => {
  test("the next decode runs on the governed count; a context made while lowered still gets the full count", async () => {
    const { log } = memoryLogger();
    const opts = { models: [], threads: 2, ctxSize: 512, parallel: 1, maxQueue: 4, gpu: false as const, log };
    const llama = await openLlama(opts);
    const cpu = fakeCpu();
    const g = governThreads(llama, 2, log, cpu.src, 2);
    const loaded = await loadModel(llama, { id: "tiny", path: await tinyModel() }, opts, new Arrivals());
    const generate = async () => {
      const seq = loaded.context.getSequence();
      try { await new LlamaCompletion({ contextSequence: seq }).generateCompletion("the of and", { maxTokens: 4 }); } finally { seq.dispose(); }
    };
    try {
      await generate();
      expect(loaded.context.currentThreads).toBe(2);
      cpu.pass(500, 1.2, 1);
      expect(g.update()).toBe(1);
      expect(llama.maxThreads).toBe(1);
      await generate();
      expect(loaded.context.currentThreads).toBe(1);
      // A context created now (a lazily made embedding context, a second model) is not capped at 1 for good.
      const later = await withFullThreads(llama, () => loaded.model.createContext({ contextSize: 256, threads: 2 }));
      expect(later.idealThreads).toBe(2);
      expect(llama.maxThreads).toBe(1); // the governed count is back in force
      await later.dispose();
      cpu.pass(500, 0, 1);
      expect(g.update()).toBe(2);
      await generate();
      expect(loaded.context.currentThreads).toBe(2);
    } finally {
      await loaded.context.dispose();
      await loaded.model.dispose();
    }
  }, 120_000);
});
