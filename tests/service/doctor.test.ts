/** Doctor's readings of command output, with the commands' answers given (the boundary is the OS, not our code). */
import { expect, test } from "bun:test";
import { linuxChecks, macChecks } from "../../src/integrity/doctor";

const answers = (m: Record<string, { code: number; out: string } | undefined>) => (argv: string[]) => m[argv[0]!];

test("macOS: FileVault, SIP, Gatekeeper on; a missing command is unknown", () => {
  const ok = macChecks(answers({
    fdesetup: { code: 0, out: "FileVault is On." }, csrutil: { code: 0, out: "System Integrity Protection status: enabled." },
    spctl: { code: 0, out: "assessments enabled" },
  }));
  expect(ok.map((c) => c.status)).toEqual(["ok", "ok", "ok"]);
  const off = macChecks(answers({ fdesetup: { code: 0, out: "FileVault is Off." }, csrutil: { code: 0, out: "System Integrity Protection status: disabled." } }));
  expect(off.map((c) => c.status)).toEqual(["fail", "fail", "unknown"]);
});

test("Linux: LUKS root, AppArmor, nftables, unattended-upgrades, systemd 252", () => {
  const checks = linuxChecks(answers({
    findmnt: { code: 0, out: "/dev/mapper/root" }, lsblk: { code: 0, out: "crypt\npart\ndisk" },
    nft: { code: 0, out: "table inet filter {\n chain input {" }, systemctl: { code: 0, out: "systemd 252 (252.38)" },
    "systemd-run": { code: 0, out: JSON.stringify({ ok: true, checks: [{ name: "egress", status: "ok", detail: "refused (EPERM)" }] }) },
  }), (p) => ({ "/sys/module/apparmor/parameters/enabled": "Y\n", "/etc/apt/apt.conf.d/20auto-upgrades": 'APT::Periodic::Unattended-Upgrade "1";' } as Record<string, string>)[p]);
  expect(checks.map((c) => [c.name, c.status])).toEqual([["disk-encryption", "ok"], ["mac", "ok"], ["firewall", "ok"], ["auto-updates", "ok"], ["systemd", "ok"], ["egress-lock", "ok"]]);
  const bare = linuxChecks(answers({}), () => undefined);
  expect(bare.map((c) => c.status)).toEqual(["unknown", "unknown", "unknown", "fail", "unknown", "unknown"]);
});

test("Linux: the egress lock probe failing, or passing only under egressLock \"warn\", is a failed egress-lock check", () => {
  for (const egress of [{ status: "fail", detail: "egress lock not in effect" }, { status: "unknown", detail: "WARNING: egress lock not in effect; starting anyway" }]) {
    const checks = linuxChecks(answers({ "systemd-run": { code: 1, out: JSON.stringify({ ok: false, checks: [{ name: "egress", ...egress }] }) + "\nstderr noise" } }), () => undefined);
    expect(checks.find((c) => c.name === "egress-lock")).toMatchObject({ status: "fail" });
  }
});
