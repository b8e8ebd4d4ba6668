/**
 * The egress lock where systemd cannot attach its BPF IP firewall: a container
 * booted without the bpf syscall. IPAddressDeny=any is then silently absent, so
 * the service's pre-start verify must notice, refuse the start and say why.
 * (Where BPF works, the other live files pass only because that same check saw
 * a non-loopback connect refused with EPERM.)
 */
import { describe, expect, test } from "bun:test";
import { builtBinary, tinyModel } from "../helpers";
import { active, journal, put } from "./client";
import { bootOrSkip } from "./systemd";

const live = await bootOrSkip("egress.test.ts", { bpf: false });

const T = 240_000;

describe.skipIf(!live)("live systemd without a BPF firewall", () => {
  const sys = live!;
  test("the start is refused: verify reports the egress lock as not in effect", async () => {
    const r = sys.exec([put(sys, await builtBinary(), "appliance"), "install", "--model", put(sys, await tinyModel(), "tiny.gguf", 0o644)], { timeoutMs: T });
    expect(r.code).toBe(1);
    expect(r.err).toContain("install failed");
    expect(active(sys)).not.toBe("active");
    expect(journal(sys, "-u", "appliance.service")).toContain("egress lock not in effect");
    // Both causes named (a live-service run's drop-in emptying IPAddressDeny= read as systemd's fault alone).
    expect(journal(sys, "-u", "appliance.service")).toContain("resets IPAddressDeny=/IPAddressAllow=, or systemd could not attach");
    // Run by hand as the service would (APPLIANCE_SERVICE=1 marks the service's own environment):
    const v = sys.exec(["/usr/local/bin/appliance", "verify", "--json"], {
      env: { APPLIANCE_SERVICE: "1", APPLIANCE_CONFIG: "/etc/appliance/config.json", HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1", DO_NOT_TRACK: "1" },
    });
    expect(JSON.parse(v.out).checks.find((c: { name: string }) => c.name === "egress")).toMatchObject({ status: "fail" });
    // doctor reports the lock as not in effect on this machine.
    const d = sys.exec(["/usr/local/bin/appliance", "doctor", "--json"], { timeoutMs: T });
    expect(JSON.parse(d.out).checks.find((c: { name: string }) => c.name === "egress-lock")).toMatchObject({ status: "fail" });
  }, T);

  test("egressLock \"warn\": the operator's choice; the service starts, with the warning in the journal", () => {
    const r = sys.exec(["/usr/local/bin/appliance", "install", "--egress-lock", "warn"], { timeoutMs: T });
    expect(r.code).toBe(0);
    expect(active(sys)).toBe("active");
    expect(journal(sys, "-u", "appliance.service")).toContain("WARNING: egress lock not in effect");
  }, T);
});
