/**
 * The keys file as an operator run met it, through the compiled binary: removed while serving (every key got 401 and
 * nothing was logged, even after SIGHUP), and broken or exposed at start (exit 1, which the unit restarts ten times;
 * now exit 2, a config error it leaves stopped).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { builtBinary, tmpDir, until } from "../helpers";

let server: BinaryServer;
beforeAll(async () => { server = await startBinary(); }, 120_000);
afterAll(async () => { expect(await server.stop()).toBe(0); });

const models = (key: string) => fetch(`${server.baseURL}/v1/models`, { headers: { authorization: `Bearer ${key}` } });

test("a keys file removed while serving: every key refused, and the log says why", async () => {
  expect((await models(server.key)).status).toBe(200);
  const file = path.join(server.stateDir, "keys.json");
  const kept = fs.readFileSync(file);
  fs.rmSync(file);
  expect((await models(server.key)).status).toBe(401);
  const line = await until(() => server.log().split("\n").find((l) => l.includes("is gone: every key is refused")));
  expect(line).toContain(file);
  fs.writeFileSync(file, kept, { mode: 0o600 });
  expect((await models(server.key)).status).toBe(200); // back: read again on the next request
});

test("serve on a keys file that is broken or readable by others exits 2 naming it", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-keys-start-");
  try {
    const stateDir = path.join(dir, "state");
    const env = { PATH: "/usr/bin:/bin", HOME: dir };
    fs.mkdirSync(stateDir, { mode: 0o700 });
    const file = path.join(stateDir, "keys.json");
    for (const [text, mode, said] of [["{not json", 0o600, "is not valid JSON"], ['{"version":1,"keys":[]}', 0o644, "readable by group or others"]] as const) {
      fs.writeFileSync(file, text);
      fs.chmodSync(file, mode);
      const s = Bun.spawnSync([bin, "serve", "--state-dir", stateDir, "--port", "0"], { env });
      expect([s.exitCode, s.stderr.toString()]).toEqual([2, expect.stringContaining(said)]);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

// A fix-attack run: under systemd the unit's pre-start verify failed these (exit 1) before serve could exit 2, and a
// failing ExecStartPre is restarted until the start limit (RestartPreventExitStatus covers the main process only).
test("the pre-start verify leaves a keys file or TLS key serve refuses to serve (said, exit 0); verify itself still fails them", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-keys-prestart-");
  try {
    const stateDir = path.join(dir, "state"), env = { PATH: "/usr/bin:/bin", HOME: dir };
    fs.mkdirSync(stateDir, { mode: 0o700 });
    fs.writeFileSync(path.join(stateDir, "keys.json"), "{not json", { mode: 0o600 });
    const verify = (...extra: string[]) => Bun.spawnSync([bin, "verify", "--quiet", "--skip-models", ...extra, "--state-dir", stateDir], { env });
    const pre = verify("--pre-start");
    expect(pre.exitCode).toBe(0);
    expect(pre.stderr.toString()).toContain("is not valid JSON");
    expect(pre.stderr.toString()).toContain("left to serve, which refuses to start: exit 2");
    expect(verify().exitCode).toBe(1);
    const serve = Bun.spawnSync([bin, "serve", "--state-dir", stateDir, "--port", "0"], { env });
    expect(serve.exitCode).toBe(2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
