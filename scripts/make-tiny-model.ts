#!/usr/bin/env bun
/**
 * bun scripts/make-tiny-model.ts OUT.gguf [--layers N --embd N --heads N --ff N --ctx N --seed N]
 * Writes the deterministic tiny random-weight GGUF (src/engine/tiny-model.ts) used by tests, demo and benchmarks.
 */
import { parseArgs } from "node:util";
import { makeTinyModel, TINY_DEFAULTS, type TinyModelOptions } from "../src/engine/tiny-model";

{
  const { values, positionals } = parseArgs({
    args: Bun.argv.slice(2),
    allowPositionals: true,
    options: Object.fromEntries(Object.keys(TINY_DEFAULTS).map((k) => [k, { type: "string" as const }])),
  });
  const out = positionals[0];
  if (!out) {
    console.error("usage: bun scripts/make-tiny-model.ts OUT.gguf [--layers N --embd N --heads N --ff N --ctx N --seed N]");
    process.exit(2);
  }
  const opts: Partial<TinyModelOptions> = {};
  for (const [k, v] of Object.entries(values)) {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) { console.error(`--${k} must be a positive integer`); process.exit(2); }
    (opts as Record<string, number>)[k] = n;
  }
  const { bytes, params } = await makeTinyModel(out, opts);
  console.log(`wrote ${out}: ${(params / 1e6).toFixed(2)} M params, ${(bytes / 1e6).toFixed(1)} MB`);
}
