/**
 * The reading of AppArmor rules the live coverage test relies on (tests/live/apparmor-rules.ts): globs,
 * variables from the tunables, includes and deny rules, against the rendered profile. A matcher that granted
 * too much would let tests/live/apparmor.test.ts pass without proving anything.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { AppArmorRules, globToRegExp } from "../live/apparmor-rules";
import { renderUnits } from "../../src/service/units";
import { layout } from "../../src/service/layout";
import { parseConfig } from "../../src/config/load";

test("globs: * stays within one path segment, ** crosses them, {a,b} and ? as AppArmor reads them", () => {
  expect(globToRegExp("/var/log/appliance/*").test("/var/log/appliance/a.log")).toBe(true);
  expect(globToRegExp("/var/log/appliance/*").test("/var/log/appliance/x/a.log")).toBe(false);
  expect(globToRegExp("/var/log/appliance/**").test("/var/log/appliance/x/a.log")).toBe(true);
  expect(globToRegExp("/{usr/,}lib{,32,64}/**.so*").test("/usr/lib/x86_64-linux-gnu/libc.so.6")).toBe(true);
  expect(globToRegExp("/{usr/,}lib{,32,64}/**.so*").test("/lib64/ld-linux-x86-64.so.2")).toBe(true);
  expect(globToRegExp("/dev/nvidia?").test("/dev/nvidia0")).toBe(true);
  expect(globToRegExp("/dev/nvidia?").test("/dev/nvidia10")).toBe(false);
});

test.skipIf(!fs.existsSync("/etc/apparmor.d/abstractions/base"))("the rendered profile: what the service needs is granted, the rest is not", () => {
  const l = layout("systemd", "/");
  const profile = renderUnits(l, parseConfig({}))[l.apparmorProfile!]!;
  const rules = new AppArmorRules(profile);
  // Granted: its state, the native libraries mapped, the notify socket, libc through abstractions/base.
  expect(rules.allows("/var/lib/appliance/keys.json", "w")).toBe(true);
  expect(rules.allows("/usr/local/lib/appliance/native/3.22.1-linux-x64/llama-addon.node", "m")).toBe(true);
  expect(rules.allows("/run/systemd/notify", "w")).toBe(true);
  expect(rules.allows("/usr/lib/x86_64-linux-gnu/libc.so.6", "m")).toBe(true);
  expect(rules.allows("/proc/4242/status", "r")).toBe(true);
  // A CUDA engine's runtime and cuBLAS in NVIDIA's toolkit dirs (read and mapped; the unit's ExecPaths= decides
  // whether mapping them executable is possible), and nothing beside them.
  expect(rules.allows("/usr/local/cuda-13.0/targets/x86_64-linux/lib/libcublas.so.13", "m")).toBe(true);
  expect(rules.allows("/usr/local/cuda/lib64/libcudart.so.13", "m")).toBe(true);
  expect(rules.allows("/opt/cuda/lib64/libcublasLt.so.12", "r")).toBe(true);
  expect(rules.allows("/usr/local/cuda-13.0/bin/nvcc", "x")).toBe(false);
  expect(rules.allows("/usr/local/cuda-13.0/lib/libcudart.so.13", "w")).toBe(false);
  expect(rules.allows("/usr/local/cudafake/lib.so", "m")).toBe(false);
  expect(rules.allows("/usr/local/lib/other.so", "m")).toBe(false);
  // The daily check's audit anchor (appliance-verify.service, root): that one file, read and appended; nothing
  // else in its directory, no listing, no lock, no mapping (the service account is kept out by the 0700 dir).
  expect(rules.allows("/var/lib/appliance-anchor/audit.anchors", "r")).toBe(true);
  expect(rules.allows("/var/lib/appliance-anchor/audit.anchors", "w")).toBe(true);
  expect(rules.allows("/var/lib/appliance-anchor/audit.anchors", "k")).toBe(false);
  expect(rules.allows("/var/lib/appliance-anchor/audit.anchors", "m")).toBe(false);
  expect(rules.allows("/var/lib/appliance-anchor/other", "w")).toBe(false);
  expect(rules.allows("/var/lib/appliance-anchor/", "r")).toBe(false);
  // Not granted: writing the config, the binary or /usr/local/bin, running a shell, mapping state files
  // executable; denied outright: /etc/shadow, /root.
  expect(rules.allows("/etc/appliance/config.json", "w")).toBe(false);
  expect(rules.allows("/usr/local/bin/appliance", "w")).toBe(false);
  expect(rules.allows("/usr/local/bin/appliance.update-tmp", "w")).toBe(false);
  expect(rules.allows("/bin/sh", "x")).toBe(false);
  expect(rules.allows("/usr/bin/systemctl", "x")).toBe(false);
  expect(rules.allows("/var/lib/appliance/native/x.so", "m")).toBe(false);
  expect(rules.allows("/etc/shadow", "r")).toBe(false);
  expect(rules.allows("/root/.ssh/id_ed25519", "r")).toBe(false);
  expect(path.basename(l.apparmorProfile!)).toBe("usr.local.bin.appliance");
});
