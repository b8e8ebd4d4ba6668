/**
 * The compiled binary's entry point (scripts/build.ts; from the sources, src/main.ts is run directly).
 *
 * `serve` re-executes itself for huge-page malloc (util/huge-pages.ts) before anything else. Everything that runs
 * before that execve is paid twice, so this entry imports nothing but the re-exec check: the program (src/main.ts,
 * a second entrypoint of the same binary) is loaded only afterwards. When serve's first process also loaded the
 * program, the re-exec cost ~55-65 ms of a direct `serve` start (the ESM bundle evaluates every Node built-in it
 * imports, node:crypto, node:net, node:tty…, before its first line runs).
 */
import { reexecWithHugePages } from "./util/huge-pages";

// The shipped program is always production, whatever the environment says: Elysia then keeps validation details
// out of error messages, and nothing falls back to development behaviour (read once, when Elysia is imported).
Bun.env.NODE_ENV = "production";
if (process.argv[2] === "serve") reexecWithHugePages();
// Beside this file in the binary's virtual file system (the bundler names entrypoints by their path under src/).
const { main } = await import(new URL("./main.js", import.meta.url).href) as typeof import("./main");
process.exit(await main(process.argv.slice(2)));
