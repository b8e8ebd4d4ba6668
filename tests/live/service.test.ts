/**
 * The installed service on a live systemd (tests/live/systemd.ts), driven by
 * the real compiled binary as a user would: install → active and ready, chat
 * and streamed chat with the printed key, the verify timer, restart, reload,
 * the verify service. One container boot for the whole file.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel } from "../helpers";
import { parseExposition, value } from "../ops/prom";
import { active, curl as curlIn, journal, printedKey, put, unitProp } from "./client";
import { bootOrSkip, OWN_ADDRESS, type LiveSystemd } from "./systemd";
import { hugePagesCheaper, parseFaultCost } from "../../src/util/fault-probe";

const curl = (sys: LiveSystemd, url: string, body?: unknown, key = keyValue()) => curlIn(sys, url, { body, key });

const live = await bootOrSkip("service.test.ts");

const T = 240_000;
const timings: Record<string, number> = {};
const key = { value: "" };
function keyValue() { return key.value; }

describe.skipIf(!live)("live systemd: install and run", () => {
  const sys = live!;

  test("install --model → active and ready; chat and streamed chat with the printed key", async () => {
    const bin = put(sys, await builtBinary(), "appliance");
    const model = put(sys, await tinyModel(), "tiny.gguf");
    const t0 = performance.now();
    const r = sys.exec([bin, "install", "--model", model], { timeoutMs: T });
    timings.install = performance.now() - t0;
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("installed and running");
    key.value = printedKey(r.out);
    expect(key.value).not.toBe("");
    expect(active(sys)).toBe("active");

    expect(curl(sys, "http://127.0.0.1:8000/health", undefined, "").status).toBe(200);
    const chat = curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, seed: 1 });
    expect(chat.status).toBe(200);
    expect(JSON.parse(chat.body).choices[0].message.content.length).toBeGreaterThan(0);
    const stream = curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, stream: true });
    expect(stream.status).toBe(200);
    const events = stream.body.split("\n").filter((l) => l.startsWith("data: "));
    expect(events.length).toBeGreaterThan(2);
    expect(events.at(-1)).toBe("data: [DONE]");
    expect(curl(sys, "http://127.0.0.1:8000/v1/models", undefined, "apk_wrong").status).toBe(401);
  }, T);

  test("without sudo on the installed machine, keys/lockdown/status say to run as root (exit 2) instead of acting on a state dir of the user's own", () => {
    for (const args of [["keys", "create", "--name", "mine"], ["keys", "revoke", "--all"], ["lockdown", "--reason", "x"], ["status"]]) {
      const r = sys.exec(["runuser", "-u", "nobody", "--", "/usr/local/bin/appliance", ...args]);
      expect([args[0], r.code]).toEqual([args[0], 2]);
      expect(r.err).toContain("run this as root");
    }
    expect(sys.sh("ls /nonexistent 2>&1; true").out).toContain("No such file"); // nothing written as the user
    // A state dir of the user's own (flag or variable) needs nothing of the service's config: those work as before.
    sys.sh("install -d -o nobody -m 700 /var/tmp/own");
    const own = (args: string[], env = "") => sys.sh(`cd /var/tmp && ${env} runuser -u nobody -- /usr/local/bin/appliance ${args.join(" ")} 2>&1; echo "rc=$?"`).out;
    expect(own(["keys", "create", "--name", "mine", "--state-dir", "/var/tmp/own"])).toContain("rc=0");
    expect(own(["keys", "revoke", "mine", "--state-dir", "/var/tmp/own"])).toContain("rc=0");
    expect(own(["keys", "list"], "APPLIANCE_STATE_DIR=/var/tmp/own")).toContain("rc=0");
    expect(own(["lockdown", "--state-dir", "/var/tmp/own", "--reason", "x"])).toContain("rc=0");
    expect(own(["lockdown", "--off", "--state-dir", "/var/tmp/own"])).toContain("rc=0");
    expect(own(["verify", "--state-dir", "/var/tmp/own"])).not.toContain("run this as root");
    sys.sh("rm -rf /var/tmp/own");
    const uninstall = sys.exec(["runuser", "-u", "nobody", "--", "/usr/local/bin/appliance", "uninstall"]);
    expect([uninstall.code, uninstall.err]).toEqual([2, expect.stringContaining("uninstalling from the system needs root")]);
  });

  test("status names a lockdown (the health check alone would say ok)", () => {
    expect(sys.exec(["/usr/local/bin/appliance", "lockdown", "--reason", "drill"]).code).toBe(0);
    const on = sys.exec(["/usr/local/bin/appliance", "status"]);
    expect(on.out).toMatch(/lockdown: +ON since \S+, reason: drill/);
    expect(sys.exec(["/usr/local/bin/appliance", "lockdown", "--off"]).code).toBe(0);
    expect(sys.exec(["/usr/local/bin/appliance", "status"]).out).not.toContain("lockdown");
  });

  test("the daily verify timer is listed and the verify service passes", () => {
    expect(sys.exec(["systemctl", "list-timers", "--all", "--no-pager"]).out).toContain("appliance-verify.timer");
    const r = sys.exec(["systemctl", "start", "appliance-verify.service"], { timeoutMs: T });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(unitProp(sys, "Result", "appliance-verify.service")).toBe("success");
  }, T);

  test("the daily verify's outcome reaches /metrics: root records it in the log dir's root-owned verify/, the service reads it", async () => {
    expect(sys.exec(["stat", "-c", "%U:%G %a", "/var/log/appliance/verify", "/var/log/appliance/verify/verify-status.json"]).out.trim().split("\n"))
      .toEqual(["root:appliance 750", "root:root 644"]);
    const ss = await parseExposition(curl(sys, "http://127.0.0.1:8000/metrics").body);
    const ranAt = value(ss, "appliance_integrity_verify_last_run_timestamp_seconds");
    expect(ranAt).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(value(ss, "appliance_integrity_verify_last_success")).toBe(1);
    expect(value(ss, "appliance_integrity_verify_last_success_timestamp_seconds")).toBe(ranAt);
  }, T);

  test("systemctl restart comes back ready; systemctl reload re-reads the keys (SIGHUP) without a restart", async () => {
    // Type=notify: `systemctl restart` returns once serve said READY=1, so /health answers at once, no polling.
    expect(unitProp(sys, "Type")).toBe("notify");
    const t0 = performance.now();
    const r = sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T });
    expect(r.code).toBe(0);
    timings.restartToReady = performance.now() - t0;
    expect(curl(sys, "http://127.0.0.1:8000/health", undefined, "").status).toBe(200);

    const pid = unitProp(sys, "MainPID");
    // The unit sets the huge-page tunable install chose for this machine (1: THP on, unless it reports freed memory to a
    // hypervisor and huge pages measured no cheaper there, with the figures beside it; the container shares the host's
    // kernel and sysfs), so serve starts with it and does not re-execute itself.
    const environ = sys.exec(["cat", `/proc/${pid}/environ`]).out.split("\0");
    const line = /^Environment=(GLIBC_TUNABLES=glibc\.malloc\.hugetlb=([01]))(?: APPLIANCE_PAGE_PROBE=(\S+))?$/m.exec(sys.exec(["cat", "/etc/systemd/system/appliance.service"]).out);
    expect(line).not.toBeNull();
    expect(environ).toContain(line![1]!);
    if (line![3] !== undefined) {
      expect(line![2]).toBe(hugePagesCheaper(parseFaultCost(line![3])) ? "1" : "0");
      expect(environ).toContain(`APPLIANCE_PAGE_PROBE=${line![3]}`);
      expect(journal(sys, "-u", "appliance.service")).toContain('"measuredBy":"install"');
    }
    expect(environ.some((e) => e.startsWith("APPLIANCE_REEXEC="))).toBe(false);
    const reload = sys.exec(["systemctl", "reload", "appliance.service"]);
    if (reload.err) console.log(journal(sys, "-u", "appliance.service", "-n", "20")); // what the reload command said
    expect(reload.err).toBe("");
    expect(reload.code).toBe(0);
    await sys.poll("the reload in the journal", () => journal(sys, "-u", "appliance.service").includes("SIGHUP: reloading keys") || undefined);
    expect(unitProp(sys, "MainPID")).toBe(pid);
    expect(curl(sys, "http://127.0.0.1:8000/v1/models").status).toBe(200);
  }, T);

  test("the CPU variant library: the first start scans and remembers it in the state dir, the restart loads it alone", () => {
    // engine/cpu-backend.ts under the unit's sandbox (ProcSubset=pid, ProtectKernelTunables=, StateDirectory=).
    const starts = journal(sys, "-u", "appliance.service").split("\n").filter((l) => l.includes('"msg":"cpu backend"'))
      .map((l) => JSON.parse(l) as { variant?: string; how: string });
    // install's first start scans; every start since (install's own restart, the test's restart) loads the one library.
    expect(starts.length).toBeGreaterThanOrEqual(2);
    expect(starts.map((s) => s.how)).toEqual(["scanned", ...starts.slice(1).map(() => "remembered")]);
    expect(starts[0]!.variant).toMatch(/^[A-Za-z0-9_.-]+$/);
    for (const s of starts) expect(s.variant).toBe(starts[0]!.variant);
    const memo = JSON.parse(fs.readFileSync(path.join(sys.root, "var/lib/appliance/cpu-backend.json"), "utf8"));
    expect(memo.variant).toBe(starts[0]!.variant);
    expect(sys.exec(["stat", "-c", "%U %a", "/var/lib/appliance/cpu-backend.json"]).out.trim()).toBe("appliance 644");
  }, T);

  test("the chat wrapper: the service's first start resolves it and remembers it in its state dir, every restart rebuilds it", () => {
    // integrity/start-memo.ts: it was remembered only where root writes (the models dir's hash cache), so the service,
    // running as its own account, resolved it at every start (hundreds of ms of each start).
    const starts = journal(sys, "-u", "appliance.service").split("\n").filter((l) => l.includes('"msg":"model loaded"'))
      .map((l) => (JSON.parse(l) as { chatWrapper?: string }).chatWrapper);
    expect(starts.length).toBeGreaterThanOrEqual(2);
    expect(starts).toEqual(["resolved", ...starts.slice(1).map(() => "remembered")]);
    expect(sys.exec(["stat", "-c", "%U %a", "/var/lib/appliance/start-memo.json"]).out.trim()).toBe("appliance 600");
  });

  test("install --port N with N taken by another program, or --model with a file llama.cpp cannot load: refused before anything changes", async () => {
    const config = fs.readFileSync(path.join(sys.root, "etc/appliance/config.json"), "utf8");
    const manifest = fs.readFileSync(path.join(sys.root, "var/lib/appliance/models/CHECKSUMS.sha256"), "utf8");
    expect(sys.exec(["systemd-run", "--unit=squatter", "--collect", "python3", "-m", "http.server", "9100", "--bind", "127.0.0.1"]).code).toBe(0);
    try {
      await sys.poll("the squatter listening", () => curl(sys, "http://127.0.0.1:9100/", undefined, "").status === 200 || undefined, T);
      const port = sys.exec(["/usr/local/bin/appliance", "install", "--port", "9100"], { timeoutMs: T });
      expect(port.err).toContain("port 9100 on 127.0.0.1 is in use");
      expect(port.code).toBe(2);
    } finally { sys.exec(["systemctl", "stop", "squatter"]); }
    // A listener on another address counts for a wildcard bind (a probe of loopback alone missed it).
    expect(sys.exec(["systemd-run", "--unit=squatter2", "--collect", "python3", "-m", "http.server", "9101", "--bind", OWN_ADDRESS]).code).toBe(0);
    try {
      await sys.poll("the second squatter listening", () => curl(sys, `http://${OWN_ADDRESS}:9101/`, undefined, "").status === 200 || undefined, T);
      const wild = sys.exec(["/usr/local/bin/appliance", "install", "--port", "9101", "--host", "0.0.0.0", "--allow-public-bind"], { timeoutMs: T });
      expect([wild.code, wild.err]).toEqual([2, expect.stringContaining("port 9101 on 0.0.0.0 is in use")]);
    } finally { sys.exec(["systemctl", "stop", "squatter2"]); }
    const truncated = put(sys, await tinyModel(), "cut.gguf");
    fs.truncateSync(path.join(sys.root, truncated.replace(/^\//, "")), 400_000);
    const model = sys.exec(["/usr/local/bin/appliance", "install", "--model", truncated], { timeoutMs: T });
    expect(model.code).toBe(1);
    expect(model.err).toContain("truncated");
    // Nothing changed: the config, the models, and the service still answering where it was.
    expect(fs.readFileSync(path.join(sys.root, "etc/appliance/config.json"), "utf8")).toBe(config);
    expect(fs.readFileSync(path.join(sys.root, "var/lib/appliance/models/CHECKSUMS.sha256"), "utf8")).toBe(manifest);
    expect(active(sys)).toBe("active");
    expect(curl(sys, "http://127.0.0.1:8000/health", undefined, "").status).toBe(200);
  }, T);

  test("install --port --threads --ctx-size --host 0.0.0.0 --allow-public-bind persists every flag; status uses the installed port", async () => {
    const r = sys.exec(["/usr/local/bin/appliance", "install", "--port", "9123", "--threads", "1", "--ctx-size", "1024",
      "--host", "0.0.0.0", "--allow-public-bind", "--max-queue", "5", "--allowed-hosts", OWN_ADDRESS], { timeoutMs: T });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("installed and running: http://127.0.0.1:9123/health answers");
    const persisted = JSON.parse(fs.readFileSync(path.join(sys.root, "etc/appliance/config.json"), "utf8"));
    expect(persisted).toMatchObject({ port: 9123, threads: 1, ctxSize: 1024, host: "0.0.0.0", allowPublicBind: true, maxQueue: 5, allowedHosts: [OWN_ADDRESS], stateDir: "/var/lib/appliance" });
    expect(unitProp(sys, "IPAddressAllow").split(" ").sort()).toEqual(["0.0.0.0/0", "::/0"]); // "any"
    const invocation = unitProp(sys, "InvocationID");
    const log = journal(sys, `_SYSTEMD_INVOCATION_ID=${invocation}`);
    expect(log).toContain('"threads":1');
    expect(log).toContain('"port":9123');
    // A client from a non-loopback address gets in (the IP filter would drop it with IPAddressAllow=localhost).
    expect(curl(sys, `http://${OWN_ADDRESS}:9123/health`, undefined, "").status).toBe(200);
    expect(curl(sys, "http://127.0.0.1:8000/health", undefined, "").status).toBe(0); // nothing on the default port
    const status = sys.exec(["/usr/local/bin/appliance", "status"]);
    expect(status.out).toContain("ok (http://127.0.0.1:9123/health)");
    expect(status.code).toBe(0);
  }, T);

  test("a second install with nothing to change starts a stopped service, keeping the persisted flags", async () => {
    expect(sys.exec(["systemctl", "stop", "appliance.service"]).code).toBe(0);
    expect(active(sys)).toBe("inactive");
    const r = sys.exec(["/usr/local/bin/appliance", "install"], { timeoutMs: T });
    expect(r.code).toBe(0);
    expect(r.out).toContain("not running: starting it");
    expect(r.out).toContain("installed and running: http://127.0.0.1:9123/health answers");
    expect(active(sys)).toBe("active");
    expect(JSON.parse(fs.readFileSync(path.join(sys.root, "etc/appliance/config.json"), "utf8")).threads).toBe(1);
  }, T);

  test("install again makes models an older release left the service's own root's again (read-only to it)", () => {
    // Upgrade run: the service's own model is re-hashed at every start (the hash cache trusts root's only) and writable by it.
    expect(sys.exec(["sh", "-c", "chown appliance:appliance /var/lib/appliance/models/*.gguf && chmod 0640 /var/lib/appliance/models/*.gguf"]).code).toBe(0);
    const r = sys.exec(["/usr/local/bin/appliance", "install"], { timeoutMs: T });
    expect(r.code).toBe(0);
    expect(sys.exec(["sh", "-c", "stat -c '%U:%G %a' /var/lib/appliance/models/*.gguf"]).out.trim()).toBe("root:appliance 440");
    expect(active(sys)).toBe("active");
  }, T);

  // Live-service run (stop 73): verify passed a library folder made world-writable, which every start of serve refuses,
  // and install called the installation up to date and left the mode.
  test("a writable native-library folder: verify fails naming it, install makes it root's read-only again and the service starts", () => {
    const folder = sys.exec(["sh", "-c", "find /usr/local/lib/appliance/native -mindepth 2 -type d | head -1"]).out.trim();
    expect(folder).toStartWith("/usr/local/lib/appliance/native/");
    expect(sys.exec(["chmod", "0777", folder]).code).toBe(0);
    const bad = sys.exec(["/usr/local/bin/appliance", "verify", "--skip-models"], { timeoutMs: T });
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain(`${folder} must be root-owned and not writable by group or others`);
    expect(sys.exec(["/usr/local/bin/appliance", "install"], { timeoutMs: T }).code).toBe(0);
    expect(sys.exec(["stat", "-c", "%U %a", folder]).out.trim()).toBe("root 755");
    expect(sys.exec(["/usr/local/bin/appliance", "verify", "--skip-models"], { timeoutMs: T }).code).toBe(0);
    expect(sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code).toBe(0);
    expect(active(sys)).toBe("active");
  }, T);

  test("verify says when the installed units are not the ones this binary installs (update swaps the binary only), and install rewrites them", () => {
    const verify = () => sys.exec(["/usr/local/bin/appliance", "verify", "--skip-models"], { timeoutMs: T });
    expect(verify().out).toMatch(/✓ units +the service's units are the ones this binary installs/);
    const unit = path.join(sys.root, "etc/systemd/system/appliance.service");
    fs.appendFileSync(unit, "# as an older release wrote it\n");
    const stale = verify();
    expect(stale.code).toBe(0); // a warning: the pre-start check must not keep the service from starting
    expect(stale.out).toContain("/etc/systemd/system/appliance.service differ from what this binary installs");
    expect(sys.exec(["/usr/local/bin/appliance", "install"], { timeoutMs: T }).code).toBe(0);
    expect(verify().out).toMatch(/✓ units /);
  }, T);

  test("the daily check anchors the audit log where the service account cannot write; a rewrite of the log is caught against it", () => {
    const anchors = "/var/lib/appliance-anchor/audit.anchors";
    expect(sys.exec(["systemctl", "start", "appliance-verify.service"], { timeoutMs: T }).code).toBe(0);
    expect(sys.exec(["stat", "-c", "%U %a", "/var/lib/appliance-anchor", anchors]).out.trim().split("\n")).toEqual(["root 700", "root 600"]);
    const asService = (cmd: string) => sys.exec(["runuser", "-u", "appliance", "--", "sh", "-c", cmd]).code;
    expect(asService(`echo '{}' >> ${anchors}`)).not.toBe(0);
    expect(asService("rm -rf /var/lib/appliance-anchor")).not.toBe(0);
    const verify = () => sys.exec(["/usr/local/bin/appliance", "audit", "verify", "--state-dir", "/var/lib/appliance", "--checkpoints", anchors]);
    expect(verify().code).toBe(0);
    // With the service account's rights: empty its log and its own checkpoint file (it owns both).
    sys.exec(["systemctl", "stop", "appliance.service"], { timeoutMs: T });
    expect(asService(": > /var/lib/appliance/audit.jsonl && rm -f /var/lib/appliance/audit.checkpoints")).toBe(0);
    expect(sys.exec(["/usr/local/bin/appliance", "audit", "verify", "--state-dir", "/var/lib/appliance"]).code).toBe(0); // nothing local left to object
    const r = verify();
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/removed from the end \(truncated or emptied\)/);
    expect(sys.exec(["systemctl", "start", "appliance-verify.service"], { timeoutMs: T }).code).not.toBe(0); // the daily check fails loudly
    expect(sys.exec(["systemctl", "start", "appliance.service"], { timeoutMs: T }).code).toBe(0);
  }, T);

  test("reboot: the service comes back by itself, on the installed port", async () => {
    const t0 = performance.now();
    await sys.reboot();
    await sys.poll("the service after reboot", () => active(sys) === "active" || undefined, T);
    timings.bootToActive = performance.now() - t0;
    expect(curl(sys, "http://127.0.0.1:9123/health", undefined, "").status).toBe(200);
    expect(journal(sys, "-b", "-u", "appliance.service")).not.toContain("verify failed");
  }, T);
});

afterAll(() => {
  if (live) console.log(`live timings (ms): ${Object.entries(timings).map(([k, v]) => `${k}=${Math.round(v)}`).join(" ")}`);
});
