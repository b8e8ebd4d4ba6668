/**
 * The daily check's outcome in /metrics, on the compiled binary: `appliance verify` (a full run) records its
 * result in the state dir (integrity/verify-status.ts) and a running server's /metrics shows it, parsed by the
 * official Prometheus parser: when it last ran, whether it passed, when it last passed. The unit's pre-start
 * check (--skip-models) is not a full run and records nothing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { builtBinary } from "../helpers";
import { has, scrapeMetrics, value } from "./prom";

const RUN = "appliance_integrity_verify_last_run_timestamp_seconds";
const OK = "appliance_integrity_verify_last_success";
const OK_AT = "appliance_integrity_verify_last_success_timestamp_seconds";

let srv: BinaryServer;
let scraper: string;
beforeAll(async () => {
  srv = await startBinary([], [["--scope", "metrics"]]);
  scraper = srv.keys[0]!;
}, 120_000);
afterAll(async () => { await srv?.stop(); });

async function verify(...flags: string[]) {
  const p = Bun.spawn([await builtBinary(), "verify", "--state-dir", srv.stateDir, ...flags],
    { env: { PATH: "/usr/bin:/bin", HOME: path.dirname(srv.stateDir) }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { out, err, code };
}
const nowS = () => Math.floor(Date.now() / 1000);

test("verify's outcome and time reach /metrics: none yet, a pass, a failure, and the pre-start check leaves them alone", async () => {
  const none = await scrapeMetrics(srv.baseURL, scraper);
  for (const name of [RUN, OK, OK_AT]) expect(has(none, name)).toBe(true);
  expect([value(none, RUN), value(none, OK), value(none, OK_AT)]).toEqual([0, 0, 0]);

  // A passing full check.
  const t0 = nowS();
  const pass = await verify();
  expect(pass.err).toBe("");
  expect(pass.code).toBe(0);
  const t1 = nowS();
  const passed = await scrapeMetrics(srv.baseURL, scraper);
  const ranAt = value(passed, RUN);
  expect(ranAt).toBeGreaterThanOrEqual(t0);
  expect(ranAt).toBeLessThanOrEqual(t1);
  expect(value(passed, OK)).toBe(1);
  expect(value(passed, OK_AT)).toBe(ranAt);

  // A failing one: a model file the manifest does not list.
  fs.writeFileSync(path.join(srv.stateDir, "models", "stray.gguf"), "GGUF");
  const fail = await verify("--json");
  expect(fail.code).toBe(1);
  expect(JSON.parse(fail.out).checks.find((c: { name: string }) => c.name === "models").status).toBe("fail");
  const failed = await scrapeMetrics(srv.baseURL, scraper);
  expect(value(failed, RUN)).toBeGreaterThanOrEqual(ranAt);
  expect(value(failed, RUN)).toBeLessThanOrEqual(nowS());
  expect(value(failed, OK)).toBe(0);
  expect(value(failed, OK_AT)).toBe(ranAt); // the last pass is still the earlier one
  const record = JSON.parse(fs.readFileSync(path.join(srv.stateDir, "verify-status.json"), "utf8"));
  expect(record).toMatchObject({ ok: false, failed: ["models"] });
  expect(fs.statSync(path.join(srv.stateDir, "verify-status.json")).mode & 0o777).toBe(0o644);

  // The pre-start check skips the models and is not recorded: the failure stays the last word.
  fs.rmSync(path.join(srv.stateDir, "models", "stray.gguf"));
  const before = fs.readFileSync(path.join(srv.stateDir, "verify-status.json"), "utf8");
  expect((await verify("--quiet", "--skip-models")).code).toBe(0);
  expect(fs.readFileSync(path.join(srv.stateDir, "verify-status.json"), "utf8")).toBe(before);
  expect(value(await scrapeMetrics(srv.baseURL, scraper), OK)).toBe(0);
}, 120_000);

test("the alert gauge is the time of the last alert record: 0 for the empty log install creates, the same after a rotation", async () => {
  const logs = fs.mkdtempSync(path.join(path.dirname(srv.stateDir), "logs-"));
  const alerts = path.join(logs, "verify-alerts.log");
  fs.writeFileSync(alerts, ""); // as install creates it
  const own = await startBinary([], [["--scope", "metrics"]], { LOGS_DIRECTORY: logs });
  try {
    const gauge = async () => value(await scrapeMetrics(own.baseURL, own.keys[0]!), "appliance_verify_alert_timestamp_seconds");
    expect(await gauge()).toBe(0);
    const at = "2026-11-30T06:00:00.000Z";
    fs.appendFileSync(alerts, JSON.stringify({ ts: at, failed: [{ name: "models", status: "fail", detail: "x" }] }) + "\n");
    expect(await gauge()).toBe(Date.parse(at) / 1000);
    // logrotate (create): the log moves to .1 and a new empty one is made now; no new alert happened.
    fs.renameSync(alerts, `${alerts}.1`);
    fs.writeFileSync(alerts, "");
    expect(await gauge()).toBe(Date.parse(at) / 1000);
  } finally {
    await own.stop();
    fs.rmSync(logs, { recursive: true, force: true });
  }
}, 120_000);
