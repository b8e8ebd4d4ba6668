/**
 * scripts/load.ts in a small configuration against the compiled binary: 50
 * concurrent clients over the mixed routes (streams included) for a few
 * seconds. Every answer must be a 2xx, 429 or 503: no 5xx, no reset, no
 * timeout, no stream without its [DONE]. Figures are printed, never asserted
 * (a loaded CI machine decides them); the README's come from the full run.
 */
import { expect, test } from "bun:test";
import path from "node:path";
import { builtBinary } from "../helpers";

test("50 concurrent clients over mixed routes: every answer 2xx, 429 or 503", async () => {
  const script = path.join(import.meta.dir, "..", "..", "scripts", "load.ts");
  const p = Bun.spawn([process.execPath, script, "--binary", await builtBinary(), "--connections", "50", "--seconds", "3",
    "--health-seconds", "2", "--generators", "2", "--json"], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const report = JSON.parse(out.trim().split("\n").at(-1)!) as {
    burst: { requests: number; outcomes: Record<string, number>; routes: Record<string, { answers: Record<string, number> }>; samples: string[] };
    health: { probes: number }; exit: number;
  };
  console.log(JSON.stringify({ burst: report.burst.outcomes, requests: report.burst.requests, health: report.health }));
  const o = report.burst.outcomes;
  expect({ "5xx": o["5xx"], reset: o.reset, timeout: o.timeout, stream_incomplete: o.stream_incomplete, samples: report.burst.samples })
    .toEqual({ "5xx": 0, reset: 0, timeout: 0, stream_incomplete: 0, samples: [] });
  expect(o["2xx"]).toBeGreaterThan(50);
  // every route of the mix was exercised, streaming chat with a complete stream among them
  for (const r of ["models", "health", "ready", "metrics", "chat", "chat_stream", "completions", "embeddings"]) expect(Object.keys(report.burst.routes)).toContain(r);
  expect(report.burst.routes.chat_stream!.answers["2xx"]).toBeGreaterThan(0);
  expect(report.health.probes).toBeGreaterThan(10);
  expect(report.exit).toBe(0); // the server drained and exited cleanly after the load
  expect(code, err).toBe(0);
}, 180_000);
