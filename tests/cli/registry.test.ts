/**
 * The lazy command table (src/cli/registry.ts): every entry says what its command's module says, every command is
 * in the table, and --version / --help evaluate none of serve's module graph (the program load they paid for).
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import type { Command } from "../../src/cli/command";
import { COMMANDS } from "../../src/cli/registry";
import { probeMain, tmpDir } from "../helpers";

const root = path.resolve(import.meta.dir, "../..");

test("each table entry has its command's name, summary, usage and hidden flag, and every command is in the table", async () => {
  for (const entry of COMMANDS) {
    const cmd = await entry.load();
    expect({ name: entry.name, summary: entry.summary, usage: entry.usage, hidden: !!entry.hidden })
      .toEqual({ name: cmd.name, summary: cmd.summary, usage: cmd.usage, hidden: !!cmd.hidden });
  }
  const exported: string[] = [];
  const dir = path.join(root, "src/cli/commands");
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
    for (const v of Object.values(await import(path.join(dir, file)) as Record<string, unknown>)) {
      const c = v as Partial<Command> | null;
      if (c && typeof c === "object" && typeof c.name === "string" && typeof c.run === "function") exported.push(c.name);
    }
  }
  expect(exported.sort()).toEqual(COMMANDS.map((c) => c.name).sort());
  expect(new Set(exported).size).toBe(exported.length);
});

/** The source modules `main(argv)` evaluated, from a fresh process (Bun lists ES modules in require.cache too). */
function modulesLoadedBy(argv: string[]): { code: number; modules: string[]; out: string } {
  const { result, out } = probeMain<{ code: number; modules: string[] }>(argv, { report: "{ code, modules: Object.keys(require.cache) }" });
  return { ...result, out };
}

/** What serve needs and --version / --help must not pay for. */
const SERVE_GRAPH = /node_modules[\\/](node-llama-cpp|zod|elysia|pino)[\\/]|src[\\/](server|engine|config|guards)[\\/]|src[\\/]cli[\\/]commands[\\/]serve/;

test("--version, --help and COMMAND --help evaluate none of serve's modules", () => {
  for (const argv of [["--version"], ["--help"], ["serve", "--help"], ["keys", "--help"]]) {
    const { code, modules, out } = modulesLoadedBy(argv);
    expect(code).toBe(0);
    expect(modules.filter((m) => SERVE_GRAPH.test(m))).toEqual([]);
    if (argv[0] === "--version") expect(out).toMatch(/^appliance \d+\.\d+\.\d+ \(commit /);
    else expect(out).toContain("usage:");
  }
  // The probe does see a command's graph when that command runs (a config error: exit 2, its modules loaded).
  const bad = modulesLoadedBy(["config", "print", "--port", "nope"]);
  expect(bad.code).toBe(2);
  expect(bad.modules.some((m) => /src[\\/]config[\\/]load\.ts$/.test(m))).toBe(true);
});

// The config and keys schemas are zod/mini (config/schema.ts): zod's classic API, several times dearer to build
// and parse, is loaded only with the request schemas, after serve listens (server/openai/wire.ts).
test("the commands that read the config and the keys file load no part of zod's classic API", () => {
  const dir = tmpDir();
  for (const argv of [["config", "print", "--state-dir", dir], ["keys", "list", "--state-dir", dir]]) {
    const { code, modules } = modulesLoadedBy(argv);
    expect(code).toBe(0);
    expect(modules.some((m) => /src[\\/]config[\\/]schema\.ts$/.test(m))).toBe(true);
    expect(modules.filter((m) => /node_modules[\\/]zod[\\/]v4[\\/]classic[\\/]/.test(m))).toEqual([]);
  }
});
