/** The README stays true: its first set-up command (the demo) and its request-signing example actually work. */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { listenApp, makeApp, tmpDir } from "../helpers";

const root = path.join(import.meta.dir, "..", "..");
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");

test("`bun run demo` builds, prints a working key and serves the demo model", async () => {
  expect(readme).toContain("npm install && npx bun run demo");
  const env = { ...process.env, PORT: "0", DEMO_DIR: tmpDir("appliance-demo-") };
  const proc = Bun.spawn([process.execPath, "run", "demo"], { cwd: root, stdout: "pipe", stderr: "pipe", env });
  try {
    const reader = proc.stdout.getReader();
    let out = "", port = 0;
    while (!port) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`demo exited: ${out}\n${await new Response(proc.stderr).text()}`);
      out += new TextDecoder().decode(value);
      const m = /"msg":"listening"/.test(out) && /"port":(\d+)/.exec(out);
      if (m) port = Number(m[1]);
    }
    void (async () => { while (!(await reader.read()).done); })();
    const key = /API key \(shown once\):\s+(apk_\S+)/.exec(out)?.[1];
    expect(key).toBeDefined();
    const client = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
    const r = await client.chat.completions.create({ model: "demo", messages: [{ role: "user", content: "Hello!" }], max_tokens: 8, seed: 1 });
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
    // The README's "Calling it" curl sends $APPLIANCE_KEY: the demo prints the line that exports it, and it works as given.
    const exportLine = /^\s*(export APPLIANCE_KEY=\S+)/m.exec(out)?.[1];
    expect(exportLine).toBe(`export APPLIANCE_KEY=${key}`);
    const curl = /## Calling it\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(curl).toContain("$APPLIANCE_KEY");
    const sh = Bun.spawnSync(["bash", "-c", `${exportLine}\n${curl!.replaceAll("http://127.0.0.1:8000", `http://127.0.0.1:${port}`)}`]);
    expect(sh.exitCode).toBe(0);
    expect(sh.stdout.toString()).toContain("data: [DONE]");
    // Its docs line says the page is readable without the key, as docsPublic's default has it.
    expect(out).toContain("/swagger  (readable without the key");
    expect((await fetch(`http://127.0.0.1:${port}/swagger`)).status).toBe(200);
    // The demo run again on the same DEMO_DIR while this one serves: it stops before `keys rotate demo`, which revoked
    // the key this server's clients use (and its own server could not have started on a state dir in use).
    const again = Bun.spawnSync([process.execPath, "run", "demo"], { cwd: root, env });
    expect(again.exitCode).toBe(1);
    expect(again.stderr.toString()).toContain("a demo server is already running");
    const still = await client.chat.completions.create({ model: "demo", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });
    expect(still.choices).toHaveLength(1);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
});

test("the README's openssl key pair + keys create + curl signing example is accepted by the server", async () => {
  // The server refuses timestamps from before its own start (replays across a restart), in whole seconds,
  // as `date +%s` signs. A server clock one second behind keeps the example from landing in its start second.
  const ctx = await makeApp({ keys: [], clock: () => Date.now() - 1000 });
  const base = listenApp(ctx.app);
  const cwd = tmpDir("appliance-sign-");
  try {
    const setup = /```sh\n(# once, on the client[\s\S]*?)```/.exec(readme)?.[1];
    const block = /```sh\n(BODY=[\s\S]*?)```/.exec(readme)?.[1];
    expect(setup).toBeDefined();
    expect(block).toBeDefined();
    // `appliance` is the CLI from these sources, writing the running server's keys file (picked up without a restart).
    const cli = `appliance() { ${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(root, "src", "main.ts"))} "$@"; }\n`;
    const env = { ...process.env, APPLIANCE_STATE_DIR: ctx.stateDir };
    const run = async (script: string, extra: Record<string, string> = {}) => {
      // Async spawn: the server answering curl lives in this very process.
      const r = Bun.spawn(["bash", "-c", `set -euo pipefail\n${cli}${script}`], { cwd, env: { ...env, ...extra }, stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(r.stdout).text(), new Response(r.stderr).text(), r.exited]);
      return { out, err, code };
    };
    // The request is sent with the key the setup made (newcomer run: it sent $APPLIANCE_KEY, after the demo a key that
    // needs no signature, so the example "worked" while checking nothing); APPLIANCE_KEY here is no key at all.
    expect(setup).toContain("SIGNER_KEY=$(appliance keys create --name signer");
    expect(block).toContain("Bearer $SIGNER_KEY");
    const script = block!.replaceAll("http://127.0.0.1:8000", base).replace('"model":"demo"', '"model":"tiny"');
    const r = await run(`${setup}\n${script.replace(/curl /, "curl -sS --fail-with-body ")}`, { APPLIANCE_KEY: "apk_not_a_key" });
    expect(fs.readFileSync(path.join(ctx.stateDir, "keys.json"), "utf8")).not.toContain("PRIVATE");
    expect(fs.readFileSync(path.join(ctx.stateDir, "keys.json"), "utf8")).toContain('"signer"');
    expect(r.err.replace(/^created key 'signer'[^\n]*\n/, "")).toBe(""); // keys create's note (stderr) and nothing from curl
    expect(JSON.parse(r.out).object).toBe("list");
    expect(r.code).toBe(0);
  } finally {
    await ctx.app.stop(true);
    await ctx.engine.dispose();
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});
