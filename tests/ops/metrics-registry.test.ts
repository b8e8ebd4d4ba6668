/**
 * The default process metrics /metrics carries: prom-client's own defaults, registered one by one
 * (server/default-metrics.ts) so that building the server never walks the JS heap for V8 heap-space statistics
 * Bun only emulates, and nothing else of the defaults is lost or added.
 */
import { expect, test } from "bun:test";
import v8 from "node:v8";
import client from "prom-client";
import { LEFT_OUT_DEFAULTS, REGISTERED_DEFAULTS } from "../../src/server/default-metrics";
import { Metrics } from "../../src/server/metrics";

const names = async (r: client.Registry) => (await r.getMetricsAsJSON()).map((m) => m.name).filter((n) => !n.startsWith("appliance_")).sort();

test("building the metrics never asks for V8's heap-space statistics (under Bun a walk of the whole heap)", () => {
  const original = v8.getHeapSpaceStatistics;
  let calls = 0;
  v8.getHeapSpaceStatistics = () => { calls++; return original(); };
  try {
    new Metrics();
  } finally {
    v8.getHeapSpaceStatistics = original;
  }
  expect(calls).toBe(0);
});

test("every prom-client default is registered but the heap spaces, under the same names", async () => {
  const defaults = require("prom-client/lib/defaultMetrics") as { metricsList: string[] };
  expect([...REGISTERED_DEFAULTS, ...LEFT_OUT_DEFAULTS].sort()).toEqual([...defaults.metricsList].sort());

  const reference = new client.Registry();
  client.collectDefaultMetrics({ register: reference, eventLoopMonitoringPrecision: 2_147_483_647 });
  const expected = (await names(reference))
    .filter((n) => !n.startsWith("nodejs_heap_space_size_") && !/^nodejs_eventloop_lag_(min|max|mean|stddev|p50|p90|p99)_seconds$/.test(n)
      && !/^nodejs_active_(handles|requests|resources)(_total)?$/.test(n));
  expect(await names(new Metrics().registry)).toEqual(expected);
  expect(expected).toContain("process_resident_memory_bytes");
  expect(expected).toContain("nodejs_eventloop_lag_seconds");
});

// Operations run: `promtool check metrics` failed on the scrape (exit 3): prom-client's nodejs_active_*_total are
// gauges with a counter's suffix, and under Bun they are stubs that read 0 whatever runs.
test("the exposition keeps Prometheus's naming rules: `_total` only on counters; no stub gauges", async () => {
  const metrics = await new Metrics().registry.getMetricsAsJSON();
  expect(metrics.filter((m) => m.name.endsWith("_total") && String(m.type) !== "counter").map((m) => m.name)).toEqual([]);
  expect(metrics.map((m) => m.name).filter((n) => n.startsWith("nodejs_active_"))).toEqual([]);
});
