#!/usr/bin/env bun
/**
 * bun run demo — builds the binary, makes the built-in tiny demo model,
 * registers it in the checksum manifest, issues a demo API key, prints how to
 * call the server, and runs it in the foreground on 127.0.0.1:8000.
 * Everything lives under .demo/ (git-ignored; DEMO_DIR overrides). PORT picks the port. APPLIANCE_BINARY runs that
 * binary instead of building one (the tests'). Ctrl-C stops it.
 */
import fs from "node:fs";
import path from "node:path";
import { build } from "./build";
import { makeTinyModel } from "../src/engine/tiny-model";
import { auditWriterRunning } from "../src/log/audit";

const root = path.resolve(import.meta.dir, "..");
const demo = process.env.DEMO_DIR ? path.resolve(process.env.DEMO_DIR) : path.join(root, ".demo");
const stateDir = path.join(demo, "state");
const port = process.env.PORT ?? "8000";
fs.mkdirSync(demo, { recursive: true, mode: 0o700 });
// A demo already serving this state dir holds its audit log's lock (log/audit.ts): stop before `keys rotate demo`
// below, which would revoke the key that server's clients use (and this second server could not start anyway).
if (auditWriterRunning(stateDir)) {
  console.error(`a demo server is already running on ${stateDir} (its key is unchanged). Stop it first, or give this one its own: DEMO_DIR=/tmp/demo2 PORT=8001 npx bun run demo`);
  process.exit(1);
}

const bin = process.env.APPLIANCE_BINARY ?? await build("linux-x64", path.join(root, "dist", "appliance")).catch((e) => {
  console.error(`build failed (${(e as Error).message}); running from source instead`);
  return undefined;
});
const cmd = bin && process.platform === "linux" && process.arch === "x64" ? [bin] : [process.execPath, path.join(root, "src", "main.ts")];
// quiet: stderr is shown only on failure (`keys list` on a first run says there is no keys file yet: not news here).
const run = (args: string[], quiet = false) => {
  const r = Bun.spawnSync([...cmd, ...args], { stderr: quiet ? "pipe" : "inherit" });
  if (r.exitCode !== 0) { if (quiet && r.stderr) process.stderr.write(r.stderr); process.exit(r.exitCode ?? 1); }
  return r.stdout.toString().trim();
};

const model = path.join(demo, "demo.gguf");
if (!fs.existsSync(model)) await makeTinyModel(model, { layers: 2, embd: 64, heads: 4, ff: 128, ctx: 2048 });
run(["models", "add", model, "--state-dir", stateDir]);
const hasKey = run(["keys", "list", "--json", "--state-dir", stateDir], true).includes('"name": "demo"');
const key = run(["keys", hasKey ? "rotate" : "create", ...(hasKey ? ["demo"] : ["--name", "demo"]), "--state-dir", stateDir]);

console.log(`
appliance demo — a tiny random-weight model (its output is gibberish; the code paths are real)

  API key (shown once):  ${key}
  Base URL:              http://127.0.0.1:${port}/v1
  Docs:                  http://127.0.0.1:${port}/swagger  (readable without the key; calls from it need the key)

  export APPLIANCE_KEY=${key}    # what the README's examples send

  curl http://127.0.0.1:${port}/v1/chat/completions \\
    -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" \\
    -d '{"model":"demo","messages":[{"role":"user","content":"Hello!"}],"max_tokens":32}'

  node -e 'const OpenAI=require("openai");new OpenAI({apiKey:"${key}",baseURL:"http://127.0.0.1:${port}/v1"})
    .chat.completions.create({model:"demo",messages:[{role:"user",content:"Hi"}]}).then(r=>console.log(r.choices[0].message))'
`);
// The server runs in a session of its own, so a terminal's Ctrl-C reaches this script only, which passes it on once.
// It shared our process group: the terminal's SIGINT reached it directly and again through us (and through npm, which
// forwards it too), and the server took the repeat for a second Ctrl-C: "ending the grace period now", no drain.
const server = Bun.spawn([...cmd, "serve", "--state-dir", stateDir, "--port", port], { stdout: "inherit", stderr: "inherit", detached: true });
// The copies of one Ctrl-C arrive together; a press a moment later is a second one (the server then ends its grace).
const REPEAT_MS = 300;
let lastSent = -Infinity;
const forward = (sig: NodeJS.Signals) => {
  const now = performance.now();
  if (now - lastSent < REPEAT_MS) return;
  lastSent = now;
  server.kill(sig);
};
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => forward(sig));
process.on("SIGHUP", () => forward("SIGTERM")); // the terminal closed: it no longer reaches the server's session
process.on("exit", () => { if (server.exitCode === null) server.kill("SIGTERM"); });
process.exit(await server.exited);
