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
  const proc = Bun.spawn([process.execPath, "run", "demo"], {
    cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, PORT: "0", DEMO_DIR: tmpDir("appliance-demo-") },
  });
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
    const r = await client.chat.completions.create({ model: "demo", messages: [{ role: "user", content: "Hello!" }], max_tokens: 8 });
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
});

test("the README's curl + openssl signing example is accepted by a signature-requiring key", async () => {
  const ctx = await makeApp({ keys: [{ name: "signer", requireSignature: true }] });
  const base = listenApp(ctx.app);
  try {
    const block = /```sh\n(BODY=[\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const script = block!.replaceAll("http://127.0.0.1:8000", base).replace('"model":"demo"', '"model":"tiny"');
    // Async spawn: the server answering curl lives in this very process.
    const r = Bun.spawn(["bash", "-c", `set -euo pipefail\n${script.replace(/curl /, "curl -sS --fail-with-body ")}`], {
      env: { ...process.env, APPLIANCE_KEY: ctx.key }, stdout: "pipe", stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([new Response(r.stdout).text(), new Response(r.stderr).text(), r.exited]);
    expect(err).toBe("");
    expect(JSON.parse(out).object).toBe("list");
    expect(code).toBe(0);
  } finally {
    await ctx.app.stop(true);
    await ctx.engine.dispose();
  }
});
