#!/usr/bin/env bun
/**
 * bun scripts/gen-config-doc.ts [--check] — writes the README's configuration
 * table from the zod schema (between the config markers). --check exits 1 if
 * the README is out of date (a test runs it).
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { DEFAULTS, kebab } from "../src/config/load";
import { configSchema } from "../src/config/schema";

const README = path.join(import.meta.dir, "..", "README.md");
const START = "<!-- config:start -->", END = "<!-- config:end -->";

function rows(shape: Record<string, z.ZodType>, prefix = "", defaults: Record<string, unknown> = DEFAULTS): string[] {
  const out: string[] = [];
  for (const [key, schema] of Object.entries(shape)) {
    const def = defaults[key];
    const inner = (schema as unknown as { unwrap?: () => z.ZodType }).unwrap?.() as unknown as { shape?: Record<string, z.ZodType> } | undefined;
    const name = prefix ? `${prefix}.${key}` : key;
    if (def && typeof def === "object" && !Array.isArray(def) && inner?.shape) {
      out.push(...rows(inner.shape, name, def as Record<string, unknown>));
      continue;
    }
    const flag = prefix ? "—" : `\`--${kebab(key)}\``;
    const env = `\`APPLIANCE_${name.split(".").map((p) => kebab(p).replace(/-/g, "_").toUpperCase()).join("__")}\``;
    const shown = key === "stateDir" ? "per platform (see below)" : `\`${JSON.stringify(def)}\``;
    out.push(`| \`${name}\` | ${flag} | ${env} | ${shown} | ${(schema.description ?? "").replace(/\|/g, "\\|")} |`);
  }
  return out;
}

export function configTable(): string {
  return ["| setting | flag | environment | default | description |", "|---|---|---|---|---|", ...rows(configSchema.shape as never)].join("\n");
}

if (import.meta.main) {
  const readme = fs.readFileSync(README, "utf8");
  const [head, rest] = readme.split(START);
  if (rest === undefined) { console.error("README has no config markers"); process.exit(1); }
  const tail = rest.split(END)[1]!;
  const next = `${head}${START}\n${configTable()}\n${END}${tail}`;
  if (process.argv.includes("--check")) {
    if (next !== readme) { console.error("README configuration table is out of date: run bun scripts/gen-config-doc.ts"); process.exit(1); }
    console.log("README configuration table is up to date");
  } else {
    fs.writeFileSync(README, next);
    console.log("README configuration table written");
  }
}
