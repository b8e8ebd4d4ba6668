/**
 * prom-client's default metrics (process CPU, memory and fds, event-loop lag, GC, …), registered one by one as its
 * collectDefaultMetrics does, without nodejs_heap_space_size_*: registering those calls v8.getHeapSpaceStatistics()
 * once to see whether the runtime has it, and under Bun that emulation walks the whole JS heap (3-7 ms of every start,
 * more as the heap grows; then ~2.5 ms per scrape), for numbers that describe no V8 heap. The list follows prom-client
 * 15's lib/defaultMetrics.js; tests/ops/metrics-registry.test.ts checks it still names every default but that one.
 * Static requires, so the bundler carries each file into the compiled binary.
 */
import type { Registry } from "prom-client";

type Register = (registry: Registry, config: object) => void;

const DEFAULTS: Record<string, Register> = {
  processCpuTotal: require("prom-client/lib/metrics/processCpuTotal"),
  processStartTime: require("prom-client/lib/metrics/processStartTime"),
  osMemoryHeap: require("prom-client/lib/metrics/osMemoryHeap"),
  processOpenFileDescriptors: require("prom-client/lib/metrics/processOpenFileDescriptors"),
  processMaxFileDescriptors: require("prom-client/lib/metrics/processMaxFileDescriptors"),
  eventLoopLag: require("prom-client/lib/metrics/eventLoopLag"),
  heapSizeAndUsed: require("prom-client/lib/metrics/heapSizeAndUsed"),
  version: require("prom-client/lib/metrics/version"),
  gc: require("prom-client/lib/metrics/gc"),
};

/**
 * The defaults left out (prom-client's names for them in its metricsList): the heap spaces (above), and
 * nodejs_active_{handles,requests,resources}(_total): under Bun process._getActiveHandles/_getActiveRequests and
 * getActiveResourcesInfo are stubs, so they read 0 whatever runs, and as gauges named `_total` (a counter's suffix)
 * they fail `promtool check metrics` (operations run).
 */
export const LEFT_OUT_DEFAULTS = ["heapSpacesSizeAndUsed", "processHandles", "processRequests", "processResources"];
export const REGISTERED_DEFAULTS = Object.keys(DEFAULTS);

/** Registers the defaults on `registry`; `config` as collectDefaultMetrics takes it (prefix, labels, …). */
export function registerDefaultMetrics(registry: Registry, config: Record<string, unknown> = {}) {
  const full = { eventLoopMonitoringPrecision: 10, ...config, register: registry };
  for (const register of Object.values(DEFAULTS)) register(registry, full);
}
