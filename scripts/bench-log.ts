#!/usr/bin/env bun
/**
 * bun scripts/bench-log.ts [--lines 20000] [--runs 7]
 *
 * What one request log line costs the JS thread (every request that is logged writes one: `GET /v1/models` too), with
 * the logger as serve makes it (src/log/logger.ts: the secret redaction of src/log/redact.ts) against pino with its own
 * `redact` option over the same paths (how the logger was made before) and against pino with no redaction (the floor).
 * The line is shaped like the request line (server/app.ts: the request summary's fields, one array, no secret in it);
 * lines go to a destination that drops them, so only building the line is timed. Runs alternate between the three,
 * after a warm-up of each; prints the median µs per line of each and the ratios.
 */
import { parseArgs } from "node:util";
import pino from "pino";
import { CENSOR, REDACT, createLogger } from "../src/log/logger";
import { median } from "./bench-peer-lib";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { lines: { type: "string", default: "20000" }, runs: { type: "string", default: "7" } } });
const lines = Number(values.lines), runs = Number(values.runs);
const drop = { write: () => true } as never;
const common = { level: "info", base: { app: "appliance" }, timestamp: pino.stdTimeFunctions.isoTime };
const loggers: [string, pino.Logger][] = [
  ["appliance (redact.ts)", createLogger("info", drop)],
  ["pino redact option", pino({ ...common, redact: { paths: REDACT, censor: CENSOR } }, drop)],
  ["pino, no redaction", pino(common, drop)],
];
let n = 0;
const line = () => ({
  reqId: `req_${(n++).toString(36)}`, traceId: "4bf92f3577b34da6a3ce929d0e0e4736", route: "/v1/models", status: 200, model: undefined,
  promptTokens: undefined, completionTokens: undefined, decisions: ["auth:ok", "rate:ok"], ms: 0.4, client: "127.0.0.1", keyName: "bench",
});
const perLine = (log: pino.Logger) => {
  const t0 = performance.now();
  for (let i = 0; i < lines; i++) log.info(line(), "request");
  return ((performance.now() - t0) * 1000) / lines;
};
for (const [, log] of loggers) perLine(log); // warm-up
const us = new Map<string, number[]>(loggers.map(([name]) => [name, []]));
for (let r = 0; r < runs; r++) for (let j = 0; j < loggers.length; j++) { const [name, log] = loggers[(r + j) % loggers.length]!; us.get(name)!.push(perLine(log)); }
const m = (name: string) => median(us.get(name)!);
console.log(`request log line, ${lines} lines per run, ${runs} runs alternated (median µs per line):`);
for (const [name] of loggers) console.log(`  ${name}: ${m(name).toFixed(2)} µs`);
console.log(`  appliance / pino redact option: ${(m(loggers[0]![0]) / m(loggers[1]![0])).toFixed(2)}; appliance - no redaction: ${(m(loggers[0]![0]) - m(loggers[2]![0])).toFixed(2)} µs`);
