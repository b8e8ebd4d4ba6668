#!/usr/bin/env bun
/**
 * bun scripts/gen-config-doc.ts [--check] — writes the README's configuration
 * table from the zod schema and its command reference from the CLI's command
 * records (between their markers). --check exits 1 if the README is out of
 * date (a test runs it).
 */
import fs from "node:fs";
import path from "node:path";
import type * as z from "zod/mini";
import { DEFAULTS, FILE_ONLY, kebab } from "../src/config/load";
import { configSchema, descriptionOf, withoutDefault } from "../src/config/schema";
import { COMMANDS } from "../src/cli/registry";

const README = path.join(import.meta.dir, "..", "README.md");
const BLOCKS = {
  config: () => configTable(),
  commands: () => commandTable(),
};

function rows(shape: Record<string, z.ZodMiniType>, prefix = "", defaults: Record<string, unknown> = DEFAULTS): string[] {
  const out: string[] = [];
  for (const [key, schema] of Object.entries(shape)) {
    const def = defaults[key];
    const inner = withoutDefault(schema) as unknown as { shape?: Record<string, z.ZodMiniType> };
    const name = prefix ? `${prefix}.${key}` : key;
    if (def && typeof def === "object" && !Array.isArray(def) && inner?.shape) {
      out.push(...rows(inner.shape, name, def as Record<string, unknown>));
      continue;
    }
    const fileOnly = FILE_ONLY.has(name); // a list of objects: neither a flag nor a variable can hold it
    // Every on/off setting has both flags (--x and --no-x, src/cli/command.ts); the column names the one that changes it.
    const flag = prefix || fileOnly ? "—" : typeof def === "boolean" ? (def ? `\`--no-${kebab(key)}\`` : `\`--${kebab(key)}\``) : `\`--${kebab(key)}\``;
    const env = fileOnly ? "—" : `\`APPLIANCE_${name.split(".").map((p) => kebab(p).replace(/-/g, "_").toUpperCase()).join("__")}\``;
    const shown = key === "stateDir" ? "per platform (see below)" : `\`${JSON.stringify(def)}\``;
    out.push(`| \`${name}\` | ${flag} | ${env} | ${shown} | ${(descriptionOf(schema) ?? "").replace(/\|/g, "\\|")} |`);
  }
  return out;
}

export function configTable(): string {
  return ["| setting | flag | environment | default | description |", "|---|---|---|---|---|", ...rows(configSchema.shape as never)].join("\n");
}

/** One row per public command, straight from its record, so every command and flag is documented. */
export function commandTable(): string {
  const rows = COMMANDS.filter((c) => !c.hidden).map((c) => `| \`${c.name}\` | ${c.summary} | \`${c.usage.replace(/\|/g, "\\|")}\` |`);
  return ["| command | what it does | usage |", "|---|---|---|", ...rows].join("\n");
}

function replaceBlock(readme: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->`, end = `<!-- ${name}:end -->`;
  const [head, rest] = readme.split(start);
  if (rest === undefined) { console.error(`README has no ${name} markers`); process.exit(1); }
  return `${head}${start}\n${content}\n${end}${rest.split(end)[1]!}`;
}

if (import.meta.main) {
  const readme = fs.readFileSync(README, "utf8");
  const next = Object.entries(BLOCKS).reduce((text, [name, make]) => replaceBlock(text, name, make()), readme);
  if (process.argv.includes("--check")) {
    if (next !== readme) { console.error("README configuration or command tables are out of date: run bun scripts/gen-config-doc.ts"); process.exit(1); }
    console.log("README configuration and command tables are up to date");
  } else {
    fs.writeFileSync(README, next);
    console.log("README configuration and command tables written");
  }
}
