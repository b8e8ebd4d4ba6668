/**
 * The compiled binary starts with JavaScriptCore's JIT thresholds scaled up (scripts/build.ts STARTUP_JIT_POLICY), and
 * every thread that goes on running code puts the normal policy back (src/util/jit-policy.ts): serve once it listens,
 * any other command once its module is loaded, the chat-template worker once its renderer is loaded. A thread that never did would
 * answer every request with code the JIT is slow to compile. From the sources the calls are watched: Bun's
 * setJITPolicy (and, for serve, Bun.serve) wrapped in a fresh process, or in the worker by a preload.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { STARTUP_JIT_POLICY, bundleOptions } from "../../scripts/build";
import { probeMain, tinyModel, tmpDir } from "../helpers";

const root = path.resolve(import.meta.dir, "../..");

/** What `main(argv)` did, in order: "listen" (Bun.serve) and "jit N" (setJITPolicy); serve is stopped (SIGTERM) once it set one. */
function eventsOf(argv: string[]): { code: number; events: string[] } {
  const setup = `const events: string[] = [];
const unsafe = (Bun as any).unsafe, setPolicy = unsafe.setJITPolicy.bind(unsafe), serve = Bun.serve;
(Bun as any).serve = (o: unknown) => { events.push("listen"); return serve(o as never); };
unsafe.setJITPolicy = (n: number) => { events.push("jit " + n); setPolicy(n); if (${JSON.stringify(argv[0])} === "serve") process.kill(process.pid, "SIGTERM"); };`;
  // A serve that never sets a policy is never stopped by the probe: killed after a minute, it reports nothing.
  return probeMain<{ code: number; events: string[] }>(argv, { setup, report: "{ code, events }", env: { HOME: tmpDir() }, timeoutMs: 60_000 }).result;
}

test("the binary is built split into chunks and with a start-up JIT policy to end", () => {
  const opts = bundleOptions("linux-x64", path.join(tmpDir(), "appliance"), null, null) as { splitting?: boolean; compile?: { jitPolicy?: number } };
  expect(STARTUP_JIT_POLICY).toBeGreaterThan(1);
  expect(opts.compile?.jitPolicy).toBe(STARTUP_JIT_POLICY);
  expect(opts.splitting).toBe(true);
});

test("serve puts the normal JIT policy back once, after it listens", async () => {
  const model = await tinyModel();
  const r = eventsOf(["serve", "--model", model, "--allow-unverified", "--port", "0", "--no-auth", "--state-dir", path.join(tmpDir(), "state")]);
  expect(r.code).toBe(0); // stopped by the SIGTERM the probe sent once the policy was set
  expect(r.events).toEqual(["listen", "jit 1"]);
});

test("any other command puts it back once its module is loaded", () => {
  const r = eventsOf(["keys", "list", "--state-dir", path.join(tmpDir(), "state")]);
  expect(r.code).toBe(0);
  expect(r.events).toEqual(["jit 1"]);
});

test("the chat-template worker puts it back once its renderer is loaded, before it handles a message", async () => {
  const dir = tmpDir();
  const spy = path.join(dir, "spy.ts");
  fs.writeFileSync(spy, `const unsafe = (Bun as any).unsafe, setPolicy = unsafe.setJITPolicy.bind(unsafe);
unsafe.setJITPolicy = (n: number) => { postMessage({ jitPolicy: n }); setPolicy(n); };\n`);
  const w = new Worker(path.join(root, "src/engine/template-worker.ts"), { preload: [spy] });
  const seen: unknown[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      w.onerror = (e) => reject(e);
      w.onmessage = (e: MessageEvent) => { seen.push(e.data); if (e.data && typeof e.data === "object" && "probe" in e.data) resolve(); };
      w.postMessage({ probe: "{{ messages }}" });
    });
  } finally {
    w.terminate();
  }
  expect(seen[0]).toEqual({ jitPolicy: 1 });
  expect(seen.filter((m) => (m as { jitPolicy?: number }).jitPolicy !== undefined)).toHaveLength(1);
});
