/**
 * A start slower than TimeoutStartSec= survives on a live systemd because serve sends EXTEND_TIMEOUT_USEC
 * while it hashes and loads (and READY=1 only when serving). The slow start is real work: the installed
 * model is replaced by the same model followed by GBs of zeros (sparse, on this machine's disk, so the
 * reads cost no memory beyond the page cache), and the start timeout is set, by drop-in, to half of what
 * hashing that file took here. Before the keepalive, systemd killed such a start at the timeout, and an
 * update to a good binary was rolled back.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { sha256File } from "../../src/util/sha256";
import { builtBinary, madeTmpDirs, tinyModel } from "../helpers";
import { active, curl, put, unitProp } from "./client";
import { bootOrSkip } from "./systemd";

// /var/tmp, not /tmp: the container's boot empties its /tmp. Made before the boot, so it is in the overlay's lower layer.
const big = fs.mkdtempSync(path.join("/var/tmp", "appliance-slow-"));
madeTmpDirs.push(big);
const bigModel = path.join(big, "tiny.gguf");
fs.copyFileSync(await tinyModel(), bigModel);
const modelSize = fs.statSync(bigModel).size;
// This machine's pace: one GiB of zeros hashed from the page cache (the second pass), as serve's sha256 reads it.
fs.truncateSync(bigModel, modelSize + 2 ** 30); // llama.cpp ignores bytes after the tensor data
await sha256File(bigModel);
const t0 = performance.now();
await sha256File(bigModel);
const msPerGiB = performance.now() - t0;
// Enough zeros for ~8 s of hashing here (a faster machine gets a bigger file; reading them cold is only slower).
const GIB = Math.min(32, Math.max(2, Math.ceil(8000 / msPerGiB)));
fs.truncateSync(bigModel, modelSize + GIB * 2 ** 30);
fs.chmodSync(big, 0o755);
fs.chmodSync(bigModel, 0o444);

const live = await bootOrSkip("slow-start.test.ts");

const T = 300_000;
const MODELS = "/var/lib/appliance/models";

describe.skipIf(!live)("live systemd: a start slower than TimeoutStartSec", () => {
  const sys = live!;

  test("serve keeps extending the start timeout while it hashes a big model, and is ready once serving", async () => {
    const r = sys.exec([put(sys, await builtBinary(), "appliance"), "install", "--model", put(sys, await tinyModel(), "tiny.gguf", 0o644)], { timeoutMs: T });
    expect(r.code).toBe(0);
    expect(active(sys)).toBe("active");

    const digest = await sha256File(bigModel);
    // At most half of what serve's hash of the file takes here (at the cached pace; it then loads): the start outlasts it.
    const hashMs = msPerGiB * GIB;
    const timeoutSec = Math.max(3, Math.floor(hashMs / 2000));
    const mount = path.join("/srv", path.basename(big));
    expect(sys.exec(["mkdir", "-p", mount]).code).toBe(0);
    expect(sys.exec(["mount", "--bind", big, mount]).code).toBe(0); // PrivateTmp= hides /var/tmp from the service
    expect(sys.exec(["mount", "--bind", `${mount}/tiny.gguf`, `${MODELS}/tiny.gguf`]).code).toBe(0);
    fs.writeFileSync(path.join(sys.root, MODELS.slice(1), "CHECKSUMS.sha256"), `${digest}  tiny.gguf\n`);
    const dropIn = path.join(sys.root, "etc/systemd/system/appliance.service.d");
    fs.mkdirSync(dropIn, { recursive: true });
    fs.writeFileSync(path.join(dropIn, "timeout.conf"), `[Service]\nTimeoutStartSec=${timeoutSec}s\n`);
    sys.exec(["systemctl", "daemon-reload"]);
    expect(unitProp(sys, "TimeoutStartUSec")).toBe(`${timeoutSec}s`);

    const start = performance.now();
    const restart = sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T });
    const startMs = performance.now() - start;
    console.log(`slow start: hashing the ${GIB} GiB model (cached) takes ~${Math.round(hashMs)} ms here; TimeoutStartSec=${timeoutSec}s; restart → ready took ${Math.round(startMs)} ms`);
    expect(restart.err).toBe("");
    expect(restart.code).toBe(0); // returns once READY=1 came: not killed at the timeout
    expect(active(sys)).toBe("active");
    expect(startMs).toBeGreaterThan(timeoutSec * 1000); // the start did outlast the timeout it was given
    expect(curl(sys, "http://127.0.0.1:8000/health").status).toBe(200);
    // The service uses the big file (not a copy): it has it open.
    const pid = unitProp(sys, "MainPID");
    expect(sys.exec(["ls", "-l", `/proc/${pid}/fd`]).out).toContain(`${MODELS}/tiny.gguf`);
  }, T);

  test("update with that big model and short timeout: the new binary's slow start is waited for, not rolled back", async () => {
    const next = path.join(big, "appliance-next");
    fs.copyFileSync(await builtBinary(), next);
    fs.appendFileSync(next, Buffer.alloc(64)); // a different, still working binary
    const file = put(sys, next, "appliance-next");
    const t0 = performance.now();
    const r = sys.exec(["/usr/local/bin/appliance", "update", "--binary", file, "--sha256", await sha256File(next)], { timeoutMs: T });
    console.log(`slow start: update with the big model took ${Math.round(performance.now() - t0)} ms (TimeoutStartSec ${unitProp(sys, "TimeoutStartUSec")})`);
    expect(r.out).toContain("update complete");
    expect(r.out).not.toContain("rolling back");
    expect(r.code).toBe(0);
    expect(active(sys)).toBe("active");
  }, T);
});
