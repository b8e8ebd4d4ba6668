/**
 * `systemctl reload` (SIGHUP) re-reads the keys only. A live-service run edited the config, reloaded (exit 0, nothing
 * said), and met the edit — or a broken file, exit 2 — only at the next restart. The binary now reads the config again
 * on SIGHUP and says what a restart would meet, while it keeps serving on its start's settings.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { tmpDir, until } from "../helpers";

const file = path.join(tmpDir("appliance-reload-"), "config.json");
let server: BinaryServer;
beforeAll(async () => {
  fs.writeFileSync(file, JSON.stringify({ maxQueue: 8 }));
  server = await startBinary(["--config", file]);
}, 120_000);
afterAll(async () => { expect(await server.stop()).toBe(0); });

const models = () => fetch(`${server.baseURL}/v1/models`, { headers: { authorization: `Bearer ${server.key}` } });
const lineWith = (text: string) => until(() => server.log().split("\n").find((l) => l.includes(text)));

test("SIGHUP after a config edit: a warning naming what changed (nothing while unchanged), still serving", async () => {
  server.kill("SIGHUP");
  await lineWith("SIGHUP: reloading keys");
  expect(server.log()).not.toContain("the config changed"); // written in the same handler, right after that line
  fs.writeFileSync(file, JSON.stringify({ maxQueue: 9 }));
  server.kill("SIGHUP");
  const line = JSON.parse((await lineWith("the config changed since this server started"))!) as { changed: string[]; level: number };
  expect(line.changed).toEqual(["maxQueue"]);
  expect(server.log()).not.toContain("no longer loads");
  expect((await models()).status).toBe(200);
});

test("SIGHUP on a config the next start would refuse: logged as an error, still serving", async () => {
  fs.writeFileSync(file, '{"maxQueue": 9,');
  server.kill("SIGHUP");
  const line = (await lineWith("the config no longer loads"))!;
  expect(line).toContain(file);
  expect((await models()).status).toBe(200);
});

// Attack on the fix: a FIFO put at the config's path hung the server at SIGHUP (read synchronously, until written to).
test("SIGHUP with a FIFO at the config's path: said, and the server keeps answering", async () => {
  fs.rmSync(file);
  expect(Bun.spawnSync(["mkfifo", file]).exitCode).toBe(0);
  server.kill("SIGHUP");
  expect((await lineWith("is not a regular file"))!).toContain("the config no longer loads");
  const r = await fetch(`${server.baseURL}/v1/models`, { headers: { authorization: `Bearer ${server.key}` }, signal: AbortSignal.timeout(10_000) });
  expect(r.status).toBe(200);
});
