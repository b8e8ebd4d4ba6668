/**
 * serve loads the HTTP application's modules (Elysia, the routes, the OpenAPI docs, prom-client) while the first
 * model's context is created on node-llama-cpp's native thread, not with the rest of the program at its start
 * (server/create-server.ts loadApp; issue 11 item 6, bench-cold's `bundle` and `context` phases). That holds only
 * while nothing in serve's static imports reaches them: one static import of app.ts or of Elysia anywhere in that
 * graph evaluates them all up front again, silently. So the graph is read here, from the sources the binary is
 * built from: every static `import` (type-only imports are erased and not followed; dynamic `import()` is not).
 */
import fs from "node:fs";
import path from "node:path";
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { CONTEXT_BUILDING } from "../../src/engine/llama-load";
import { APP_BUILT_EARLY, createServer, loadApp } from "../../src/server/create-server";
import { createLogger, silentLogger } from "../../src/log/logger";
import { tinyModel, tmpDir } from "../helpers";

const SRC = path.resolve(import.meta.dir, "../../src");
const transpiler = new Bun.Transpiler({ loader: "ts" });

/** A module file for a relative specifier, or "pkg:<name>" for a package. */
function resolve(from: string, spec: string): string | undefined {
  if (!spec.startsWith(".")) return `pkg:${spec.split("/").slice(0, spec.startsWith("@") ? 2 : 1).join("/")}`;
  const base = path.resolve(path.dirname(from), spec);
  return [base, `${base}.ts`, path.join(base, "index.ts")].find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
}

/** Every module serve's static imports reach, packages as "pkg:<name>". */
function staticClosure(entry: string): Set<string> {
  const seen = new Set([entry]);
  const queue = [entry];
  while (queue.length) {
    const file = queue.pop()!;
    if (file.startsWith("pkg:") || !file.endsWith(".ts")) continue;
    for (const imp of transpiler.scanImports(fs.readFileSync(file, "utf8"))) {
      if (imp.kind !== "import-statement") continue;
      const to = resolve(file, imp.path);
      if (to && !seen.has(to)) { seen.add(to); queue.push(to); }
    }
  }
  return seen;
}

test("serve's static imports reach neither the app nor Elysia, the OpenAPI plugin or prom-client", () => {
  const reached = staticClosure(path.join(SRC, "cli/commands/serve.ts"));
  expect(reached.has(path.join(SRC, "server/create-server.ts"))).toBe(true); // the walk follows serve's imports at all
  expect(reached.has("pkg:node-llama-cpp")).toBe(true);
  const early = [path.join(SRC, "server/app.ts"), "pkg:elysia", "pkg:@elysiajs/openapi", "pkg:prom-client"].filter((m) => reached.has(m));
  expect(early).toEqual([]);
});

test("loadApp gives the app module, once", async () => {
  const first = loadApp();
  expect(loadApp()).toBe(first);
  expect(typeof (await first).createApp).toBe("function");
});

test("a start from the config says when llama.cpp builds the context, after creating it begins and before it ends", async () => {
  const stateDir = tmpDir();
  const statuses: string[] = [];
  const { engine, audit } = await createServer(parseConfig({ stateDir, model: [await tinyModel()], allowUnverified: true, audit: false } as Record<string, unknown>),
    { log: silentLogger(), onProgress: (s) => statuses.push(s) });
  try {
    const at = (prefix: string) => statuses.findIndex((s) => s.startsWith(prefix));
    expect(at("creating the context")).toBeGreaterThanOrEqual(0);
    expect(at(CONTEXT_BUILDING)).toBeGreaterThan(at("creating the context"));
    expect(at("context created")).toBeGreaterThan(at(CONTEXT_BUILDING));
    expect(statuses.filter((s) => s.startsWith(CONTEXT_BUILDING))).toHaveLength(1);
  } finally {
    audit?.close();
    await engine.dispose();
  }
}, 120_000);

test("the guards and the app are built while llama.cpp builds the context, and answer through the engine once it is loaded", async () => {
  const stateDir = tmpDir();
  const lines: { msg: string }[] = [];
  const log = createLogger("debug", { write: (s: string) => { lines.push(JSON.parse(s)); return true; } } as never);
  const { app, engine, guards, audit } = await createServer(parseConfig({ stateDir, model: [await tinyModel()], allowUnverified: true, audit: false, auth: false } as Record<string, unknown>),
    { log });
  try {
    // "model loaded" is logged once the model's context is created.
    const at = (msg: string) => lines.findIndex((l) => l.msg === msg);
    expect(at(APP_BUILT_EARLY)).toBeGreaterThanOrEqual(0);
    expect(at("model loaded")).toBeGreaterThan(at(APP_BUILT_EARLY));
    expect(lines.filter((l) => l.msg === APP_BUILT_EARLY)).toHaveLength(1);
    const models = await app.handle(new Request("http://localhost/v1/models")).then((r) => r.json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(engine.models().map((m) => m.id));
    const done = await app.handle(new Request("http://localhost/v1/completions", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: engine.models()[0]!.id, prompt: "Once upon a time", max_tokens: 3, temperature: 0 }) }));
    expect(done.status).toBe(200);
    expect(((await done.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBeGreaterThan(0);
  } finally {
    guards.close();
    audit?.close();
    await engine.dispose();
  }
}, 120_000);
