/**
 * The installed unit's sandbox and failure handling on a live systemd: what is
 * executable inside the service, limits, a tampered model (refused, alerted to
 * syslog and verify-alerts.log, retried only up to the start limit, back after
 * the fix), the daily verify's alert, and uninstall --purge leaving nothing.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel } from "../helpers";
import { active, curl, journal, put, unitProp } from "./client";
import { bootOrSkip, type LiveSystemd } from "./systemd";

const live = await bootOrSkip("hardening.test.ts");

const T = 240_000;

/** Every path under the places install writes to (and systemd keeps state in), for the before/after diff. */
function footprint(sys: LiveSystemd): string[] {
  const r = sys.sh("find /etc /var/lib /var/log /usr/local /tmp /var/tmp /run -xdev 2>/dev/null | grep -v -e '^/var/log/journal' -e '^/run/systemd' -e '^/run/user' -e '^/tmp/systemd-private' -e '^/var/lib/systemd/catalog' -e '^/srv/' -e '^/etc/ld.so.cache' -e '^/var/lib/systemd/deb-systemd' | sort");
  // Not ours: /var/lib/systemd/timers (systemd's dir, made by any Persistent= timer; our stamp in it is checked),
  // /var/lib/logrotate/status (logrotate's state, written because the test runs logrotate), agetty's reload flag.
  const notOurs = ["/var/lib/systemd/timers", "/var/lib/logrotate/status", "/run/agetty.reload"];
  return r.out.split("\n").filter((p) => p && !notOurs.includes(p));
}

describe.skipIf(!live)("live systemd: sandbox, tamper, purge", () => {
  const sys = live!;
  let before: string[] = [];
  const modelFile = "/var/lib/appliance/models/tiny.gguf";

  test("install; inside the service only the binary, system libraries and the root-owned native-library dir are executable; the service cannot write the libraries it maps", async () => {
    const bin = put(sys, await builtBinary(), "appliance");
    const model = put(sys, await tinyModel(), "tiny.gguf", 0o644);
    before = footprint(sys);
    const r = sys.exec([bin, "install", "--model", model], { timeoutMs: T });
    expect(r.code).toBe(0);
    expect(active(sys)).toBe("active");
    const pid = unitProp(sys, "MainPID");
    const opts = (p: string) => sys.exec(["findmnt", "--task", pid, "-n", "-o", "OPTIONS", "-T", p]).out.trim().split(",");
    for (const p of ["/tmp", "/dev/shm", "/var/lib/appliance", "/var/lib/appliance/models", "/var/log/appliance", "/etc"]) expect(opts(p)).toContain("noexec");
    for (const p of ["/usr/local/bin/appliance", "/usr/local/lib/appliance/native", "/usr/lib"]) expect(opts(p)).not.toContain("noexec");
    // The llama.cpp libraries the service maps come from the root-owned, read-only dir install wrote,
    // and the service account can neither add a file there nor change one.
    const maps = sys.exec(["cat", `/proc/${pid}/maps`]).out;
    const libs = [...new Set(maps.split("\n").map((l) => l.split(/\s+/)[5] ?? "").filter((f) => /libllama|libggml/.test(f)))];
    expect(libs.length).toBeGreaterThan(0);
    for (const f of libs) expect(f.startsWith("/usr/local/lib/appliance/native/")).toBe(true);
    expect(sys.exec(["runuser", "-u", "appliance", "--", "touch", "/usr/local/lib/appliance/native/planted.so"]).code).not.toBe(0);
    expect(sys.exec(["runuser", "-u", "appliance", "--", "sh", "-c", `: > '${libs[0]}'`]).code).not.toBe(0);
    expect(fs.existsSync(path.join(sys.root, "var/lib/appliance/native"))).toBe(false);
    expect(unitProp(sys, "LimitNOFILE")).toBe("65536");
    expect([unitProp(sys, "StartLimitBurst"), unitProp(sys, "StartLimitIntervalUSec")]).toEqual(["10", "2min"]);
    expect(unitProp(sys, "RestartPreventExitStatus")).toBe("2 4");
    // No ProcSubset=pid: llama.cpp can read /proc/meminfo, so no memory warning at start.
    expect(journal(sys, "-u", "appliance.service")).not.toContain("Failed to get wired system memory");
  }, T);

  test("egress lock: with the BPF firewall, verify in the service's IP sandbox sees a non-loopback datagram refused", () => {
    const r = sys.exec(["systemd-run", "--wait", "--pipe", "--quiet", "-p", "IPAddressDeny=any", "-p", "IPAddressAllow=localhost",
      "-E", "APPLIANCE_SERVICE=1", "-E", "APPLIANCE_CONFIG=/etc/appliance/config.json", "-E", "HF_HUB_OFFLINE=1", "-E", "TRANSFORMERS_OFFLINE=1",
      "-E", "DO_NOT_TRACK=1", "/usr/local/bin/appliance", "verify", "--json", "--skip-models"], { timeoutMs: T });
    expect(JSON.parse(r.out).checks.find((c: { name: string }) => c.name === "egress")).toMatchObject({ status: "ok" });
  }, T);

  test("doctor's egress probe runs verify with the unit's environment: no alert, no failed unit left behind", () => {
    const alerts = "/var/log/appliance/verify-alerts.log";
    const before = sys.sh(`wc -c < ${alerts}`).out.trim();
    const r = sys.exec(["/usr/local/bin/appliance", "doctor", "--json"], { timeoutMs: T });
    const checks = JSON.parse(r.out.slice(r.out.indexOf("{"))).checks as { name: string; status: string }[];
    expect(checks.find((c) => c.name === "egress-lock")).toMatchObject({ status: "ok" });
    expect(sys.sh(`wc -c < ${alerts}`).out.trim()).toBe(before);
    expect(sys.sh("systemctl list-units --failed --plain --no-legend").out).not.toContain("run-");
  }, T);

  test("each model is hashed once per start: the pre-start verify leaves models to serve", () => {
    const invocation = unitProp(sys, "InvocationID");
    const log = journal(sys, `_SYSTEMD_INVOCATION_ID=${invocation}`);
    expect(log).not.toContain("verify failed");
    const r = sys.exec(["/usr/local/bin/appliance", "verify", "--skip-models", "--json"]);
    expect(JSON.parse(r.out).checks.find((c: { name: string }) => c.name === "models")).toMatchObject({ status: "skip" });
  });

  // Exit 4 (integrity) is not retried: it was restarted up to the start limit, an alert each time (operator run).
  test("tampered model: start refused (exit 4, not restarted), alert in syslog and verify-alerts.log; fixed → back", async () => {
    const file = path.join(sys.root, modelFile);
    const original = fs.readFileSync(file);
    const bad = Buffer.from(original);
    bad[bad.length - 1]! ^= 0xff;
    fs.chmodSync(file, 0o640); fs.writeFileSync(file, bad); fs.chmodSync(file, 0o440);
    expect(sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code).not.toBe(0);
    // Failed for good at once: exit 4, no restart scheduled, one alert.
    expect([active(sys), unitProp(sys, "NRestarts"), unitProp(sys, "ExecMainStatus")]).toEqual(["failed", "0", "4"]);
    const restarts = unitProp(sys, "NRestarts");
    const alerts = journal(sys, "SYSLOG_FACILITY=16", "-p", "alert").split("\n").filter((l) => l.includes("verify failed: models"));
    expect(alerts.length).toBe(1);
    expect(alerts[0]).toContain(modelFile);
    const logged = fs.readFileSync(path.join(sys.root, "var/log/appliance/verify-alerts.log"), "utf8");
    expect(logged).toContain(modelFile);

    // The daily verify (root, only CAP_DAC_READ_SEARCH) fails and can append its own alert.
    const lines = logged.split("\n").filter(Boolean).length;
    expect(sys.exec(["systemctl", "start", "appliance-verify.service"], { timeoutMs: T }).code).not.toBe(0);
    const after = fs.readFileSync(path.join(sys.root, "var/log/appliance/verify-alerts.log"), "utf8").split("\n").filter(Boolean);
    expect(after.length).toBe(lines + 1);
    expect(after.at(-1)).toContain('"name":"models"');
    expect(unitProp(sys, "NRestarts")).toBe(restarts);

    fs.chmodSync(file, 0o640); fs.writeFileSync(file, original); fs.chmodSync(file, 0o440);
    expect(sys.exec(["systemctl", "start", "appliance.service"], { timeoutMs: T }).code).toBe(0);
    expect(active(sys)).toBe("active");
    expect(curl(sys, "http://127.0.0.1:8000/health").status).toBe(200);
  }, T);

  test("the README's GPU drop-in, as written: its ExecPaths= line makes a CUDA toolkit's libraries mappable in the service, through the toolkit's symlinks (without it they are not); its nvidia-modprobe runs as root before the start, and a missing one does not stop the start", () => {
    // NVIDIA's layout: /usr/local/cuda -> cuda-X.Y, lib64 -> targets/x86_64-linux/lib (a test toolkit beside any real one).
    const real = "/usr/local/cuda-0.0-appliance-test", link = "/usr/local/cuda-appliance-test", libDir = `${real}/targets/x86_64-linux/lib`;
    const dropIn = "/etc/systemd/system/appliance.service.d/cuda-test.conf";
    // The README's block, with the test toolkit's path for NVIDIA's (no /dev/nvidia* here: systemd skips those lines).
    const block = /e\.g\. for NVIDIA:\n\n```ini\n([\s\S]*?)```/.exec(fs.readFileSync(path.join(import.meta.dir, "../../README.md"), "utf8"))?.[1] ?? "";
    expect(block).toContain("ExecPaths=/usr/local/cuda/lib64\n");
    expect(block).toContain("/usr/bin/nvidia-modprobe -u -c=0");
    // A stand-in nvidia-modprobe that records who ran it and with what (this machine has no NVIDIA driver).
    const modprobe = "/usr/bin/nvidia-modprobe", record = "/run/appliance-test-nvidia-modprobe";
    expect(sys.exec(["test", "-e", modprobe]).code).not.toBe(0);
    expect(sys.sh(`mkdir -p ${libDir} && cp /usr/lib/x86_64-linux-gnu/libz.so.1 ${libDir}/libcudart.so.99 && ln -s targets/x86_64-linux/lib ${real}/lib64 && ln -s ${real} ${link}`).code).toBe(0);
    fs.writeFileSync(path.join(sys.root, modprobe), `#!/bin/sh\necho "$(id -u) $*" > ${record}\n`, { mode: 0o755 });
    const mountOpts = () => sys.exec(["findmnt", "--task", unitProp(sys, "MainPID"), "-n", "-o", "OPTIONS", "-T", libDir]).out.trim().split(",");
    const restart = () => {
      expect(sys.exec(["systemctl", "daemon-reload"]).code).toBe(0);
      expect(sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code).toBe(0);
      expect(active(sys)).toBe("active");
    };
    try {
      expect(mountOpts()).toContain("noexec");
      fs.mkdirSync(path.dirname(path.join(sys.root, dropIn)), { recursive: true });
      fs.writeFileSync(path.join(sys.root, dropIn), block.replace("ExecPaths=/usr/local/cuda/lib64", `ExecPaths=${link}/lib64`));
      restart();
      expect(mountOpts()).not.toContain("noexec");
      expect(sys.exec(["cat", record]).out).toBe("0 -u -c=0\n"); // root, though the service runs as its own account
      sys.sh(`rm -f ${modprobe} ${record}`);
      restart(); // "-": a machine without nvidia-modprobe still starts the service
      expect(sys.exec(["test", "-e", record]).code).not.toBe(0);
    } finally {
      sys.sh(`rm -f ${dropIn} ${modprobe} ${record}; rmdir --ignore-fail-on-non-empty ${path.dirname(dropIn)}; rm -rf ${real} ${link}; systemctl daemon-reload`);
    }
    expect(sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code).toBe(0);
    expect(active(sys)).toBe("active");
  }, 3 * T);

  // Operator run: systemd counts manual starts against the start limit; with 10 minutes the sixth routine restart
  // failed (start-limit-hit) though nothing was wrong.
  test("six routine restarts in a row all succeed", () => {
    expect(sys.exec(["systemctl", "reset-failed", "appliance.service"]).code).toBe(0);
    const codes = Array.from({ length: 6 }, () => sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code);
    expect(codes).toEqual([0, 0, 0, 0, 0, 0]);
    expect(active(sys)).toBe("active");
  }, 2 * T);

  /**
   * Writes `bad` over a file of the installed service (the same file: its owner and mode stay) and restarts: the start
   * fails for good at once (exit 2, no restart scheduled; a pre-start failure was "activating (auto-restart)", 5 times)
   * and the journal says `said`; the file put back, a plain restart brings the service back.
   */
  function stopsOnce(rel: string, bad: (good: string) => string, said: string) {
    const file = path.join(sys.root, rel);
    const good = fs.readFileSync(file, "utf8");
    fs.writeFileSync(file, bad(good));
    try {
      expect(sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code).not.toBe(0);
      expect([active(sys), unitProp(sys, "NRestarts"), unitProp(sys, "ExecMainStatus")]).toEqual(["failed", "0", "2"]);
      expect(journal(sys, "-u", "appliance.service")).toContain(said);
    } finally { fs.writeFileSync(file, good); }
    expect(sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code).toBe(0);
    expect(active(sys)).toBe("active");
  }

  test("a config error stops the start once (exit 2, not retried); fixed, a plain restart brings it back", () => {
    stopsOnce("etc/appliance/config.json", (good) => JSON.stringify({ ...JSON.parse(good), rateLimit: { rpmm: 3 } }), "rpmm");
  }, T);

  // A fix-attack run: the pre-start verify failed a broken keys file (exit 1), so the unit restarted until its start
  // limit; serve alone exits 2 for it. The pre-start check now leaves it to serve.
  test("a broken keys file stops the start once too (serve exits 2, not retried); fixed, a plain restart brings it back", () => {
    stopsOnce("var/lib/appliance/keys.json", () => "{not json", "left to serve");
  }, T);

  test("logrotate rotates the audit log and the alerts; the audit chain still verifies across the files", async () => {
    const key = sys.exec(["/usr/local/bin/appliance", "keys", "create", "--name", "rot"]).out.trim().split("\n").at(-1)!;
    const call = () => expect(curl(sys, "http://127.0.0.1:8000/v1/models", { key }).status).toBe(200);
    call(); call();
    await sys.poll("audit records", () => fs.existsSync(path.join(sys.root, "var/lib/appliance/audit.jsonl")) && fs.statSync(path.join(sys.root, "var/lib/appliance/audit.jsonl")).size > 0 || undefined);
    const r = sys.exec(["logrotate", "-f", "/etc/logrotate.d/appliance"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(sys.root, "var/lib/appliance/audit.jsonl.1"))).toBe(true);
    expect(fs.existsSync(path.join(sys.root, "var/log/appliance/verify-alerts.log.1"))).toBe(true);
    expect(fs.statSync(path.join(sys.root, "var/log/appliance/verify-alerts.log")).mode & 0o777).toBe(0o660);
    call();
    const v = sys.exec(["/usr/local/bin/appliance", "audit", "verify"]);
    expect(v.out + v.err).not.toContain("fail");
    expect(v.code).toBe(0);
  }, T);

  test("uninstall --purge leaves nothing behind (files before install = files after purge)", () => {
    sys.exec(["systemctl", "start", "appliance-verify.service"], { timeoutMs: T }); // leaves the timer/unit state systemd keeps
    const dropin = path.join(sys.root, "etc/systemd/system/appliance.service.d");
    fs.mkdirSync(dropin, { recursive: true });
    fs.writeFileSync(path.join(dropin, "gpu.conf"), "[Service]\nPrivateDevices=no\n"); // the README's GPU drop-in
    const r = sys.exec(["/usr/local/bin/appliance", "uninstall", "--purge"], { timeoutMs: T });
    expect(r.code).toBe(0);
    expect(active(sys)).not.toBe("active");
    const after = footprint(sys);
    expect(after.filter((p) => !before.includes(p))).toEqual([]);
    expect(sys.exec(["getent", "passwd", "appliance"]).code).not.toBe(0);
    expect(sys.sh("systemctl list-units --all --failed --plain --no-legend").out).not.toContain("appliance"); // no failed-unit record left
  }, T);
});
