/**
 * Keeps Bun's stream-based Node built-ins (node:crypto, node:net, node:dgram, node:tty, node:child_process) out of
 * the compiled binary's load (scripts/build.ts's plugin calls lazyBuiltins).
 *
 * Every `import … from "node:x"` in one of the binary's chunks is evaluated when that chunk loads, before any of its
 * code runs, even in a module that is never initialised (and the chunks every command loads hold most of the
 * program). Bun writes those five in JavaScript over node:stream; loading them was ~8-10 ms of every start
 * (`appliance --version` and `serve` alike, when the program was one chunk; a compiled probe importing them, 2-core VM). The sources load them at first use (src/util/node-builtins.ts) or use Bun's native
 * hasher and Web Crypto instead; the dependencies that import them at the top get the same here:
 * - nanoid (node-llama-cpp's config.js names a temp dir with it): its own browser build, Web Crypto's getRandomValues;
 * - node-llama-cpp's utils/hashString.js: imports node:crypto only for `crypto.subtle`, which is Web Crypto's global;
 * - node-llama-cpp's bindings/utils/testCmakeBinary.js: execFile required when a cmake binary is tested (never in a
 *   server start: getLlama runs with `build: "never"`);
 * - cross-spawn (node-llama-cpp's spawnCommand, for cmake builds) requires node:child_process at import: at first spawn;
 * - chalk's vendored supports-color and yoctocolors (node-llama-cpp's log colouring) ask node:tty whether stdout is a
 *   terminal at import: they are told it is not (no ANSI colour codes in node-llama-cpp's messages, which go into the
 *   JSON log anyway);
 * - fs-extra (node-llama-cpp's file helpers) clones node:fs at import (Object.assign, then an object spread), which
 *   reads Bun's lazy fs.ReadStream/WriteStream/promises getters and so loads node:stream (~4 ms of serve's start):
 *   both copies forward those getters at first use instead (the same values).
 * Each rewrite is an exact replacement of one import line and throws when the file no longer has it.
 */
import fs from "node:fs";
import path from "node:path";
import type { PluginBuilder } from "bun";

/** File (by its path under node_modules) → [the import line, what replaces it]. */
export const REWRITES: Record<string, [string, string]> = {
  "node-llama-cpp/dist/utils/hashString.js": ['import * as crypto from "node:crypto";\n', "// crypto: Web Crypto's global (scripts/build-lazy-builtins.ts)\n"],
  "node-llama-cpp/dist/bindings/utils/testCmakeBinary.js": ['import { execFile } from "node:child_process";\n',
    'const execFile = (...args) => require("node:child_process").execFile(...args); // at first use (scripts/build-lazy-builtins.ts)\n'],
  "chalk/source/vendor/supports-color/index.js": ["import tty from 'node:tty';\n", "const tty = { isatty: () => false }; // no colour codes (scripts/build-lazy-builtins.ts)\n"],
  "yoctocolors/base.js": ["import tty from 'node:tty';\n", "const tty = undefined; // no colour codes (scripts/build-lazy-builtins.ts)\n"],
  "cross-spawn/index.js": ["const cp = require('child_process');\n",
    "const cp = { spawn: (...a) => require('child_process').spawn(...a), spawnSync: (...a) => require('child_process').spawnSync(...a) }; // at first use (scripts/build-lazy-builtins.ts)\n"],
  "fs-extra/lib/fs/index.js": ["Object.assign(exports, fs)\n",
    "for (const key of Reflect.ownKeys(fs)) { // fs's accessors forwarded, not read now (scripts/build-lazy-builtins.ts)\n" +
    "  const d = Object.getOwnPropertyDescriptor(fs, key)\n" +
    "  if (!d.enumerable) continue\n" +
    "  if (!d.get) { exports[key] = d.value; continue }\n" +
    "  Object.defineProperty(exports, key, { enumerable: true, configurable: true, get: () => fs[key],\n" +
    "    set: (value) => Object.defineProperty(exports, key, { value, writable: true, enumerable: true, configurable: true }) })\n" +
    "}\n"],
};

/** `source` of `file` (a key of REWRITES) with its import line replaced; throws when the line is not there exactly once. */
export function rewriteImport(file: string, source: string): string {
  const [line, replacement] = REWRITES[file]!;
  if (source.split(line).length !== 2) throw new Error(`${file} changed (no single ${JSON.stringify(line.trim())}): update scripts/build-lazy-builtins.ts`);
  return source.replace(line, replacement);
}

const MERGE = "  const d = Object.getOwnPropertyDescriptor(part, key)\n" +
  "  if (!d.enumerable) continue\n" +
  "  const data = (value) => Object.defineProperty(module.exports, key, { value, writable: true, enumerable: true, configurable: true })\n" +
  "  if (d.get) Object.defineProperty(module.exports, key, { enumerable: true, configurable: true, get: () => part[key], set: data })\n" +
  "  else data(d.value)\n";

/**
 * fs-extra's lib/index.js (`module.exports = { ...require('./fs'), ...require('./copy'), … }`) with its parts merged
 * property by property, accessors forwarded (what a spread does, later parts winning, without reading the getters).
 * Throws when the file is no longer that one object of spreads.
 */
export function lazyFsExtraIndex(source: string): string {
  const m = /^'use strict'\n\nmodule\.exports = \{\n((?:  \/\/.*\n|  \.\.\.require\('\.\/[a-z-]+'\),?\n)+)\}\n$/.exec(source);
  if (!m) throw new Error("fs-extra/lib/index.js changed (no longer one object of spreads): update scripts/build-lazy-builtins.ts");
  const parts = [...m[1]!.matchAll(/require\('(\.\/[a-z-]+)'\)/g)].map((r) => `require(${JSON.stringify(r[1])})`);
  return `'use strict'\n// parts merged without reading fs's accessors (scripts/build-lazy-builtins.ts)\nmodule.exports = {}\n` +
    `for (const part of [${parts.join(", ")}]) for (const key of Reflect.ownKeys(part)) {\n${MERGE}}\n`;
}

/** Registers the rewrites and nanoid's browser build on a Bun build (see the file comment). */
export function lazyBuiltins(build: PluginBuilder, nodeModules: string) {
  for (const file of Object.keys(REWRITES)) {
    const filter = new RegExp(`[\\\\/]node_modules[\\\\/]${file.split("/").map((p) => p.replace(/[.-]/g, "\\$&")).join("[\\\\/]")}$`);
    build.onLoad({ filter }, (args) => ({ loader: "js", contents: rewriteImport(file, fs.readFileSync(args.path, "utf8")) }));
  }
  build.onLoad({ filter: /[\\/]node_modules[\\/]fs-extra[\\/]lib[\\/]index\.js$/ }, (args) => ({
    loader: "js", contents: lazyFsExtraIndex(fs.readFileSync(args.path, "utf8")),
  }));
  const nanoidBrowser = path.join(nodeModules, "nanoid", "index.browser.js");
  build.onResolve({ filter: /^nanoid$/ }, (args) => (/[\\/]node_modules[\\/]/.test(args.importer) ? { path: nanoidBrowser } : undefined));
}
