/**
 * The AppArmor profile against what the installed service really does. This kernel has no AppArmor, so
 * the profile cannot be enforced here; instead every unit command (the pre-start verify, serve through a
 * chat, reload and stop, and every ExecStart= of the daily check: its verify and its audit anchor, run twice so
 * the anchor file is both created and read back) runs under strace on the live systemd, with the unit's own
 * user, mounts and layout, and each file it opened, created, executed, mapped executable, locked or sent a
 * datagram to must be granted by the rendered profile and the abstractions it includes (apparmor-rules.ts).
 * What this does not prove: network, capability and signal rules (checked only by apparmor_parser), and
 * anything the kernel's own matching does differently from apparmor-rules.ts.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel } from "../helpers";
import { AppArmorRules } from "./apparmor-rules";
import { active, curl, journal, printedKey, put } from "./client";
import { bootOrSkip } from "./systemd";

const live = await bootOrSkip("apparmor.test.ts");

const T = 300_000;
const BIN = "/usr/local/bin/appliance";
const LOGS = "/var/log/appliance";
const ANCHORS = "/var/lib/appliance-anchor/audit.anchors";
// In a unit file "%" starts a specifier: "%%" is a literal one.
const STRACE = "/usr/bin/strace -f -qq -y -e trace=%%file,%%network,%%process,mmap,flock";

type Perm = "r" | "w" | "m" | "x" | "k";

/** Every (path, permission) an strace -f -y log shows the traced processes using successfully. */
function accesses(trace: string, isDir: (p: string) => boolean): Map<string, Set<Perm>> {
  const out = new Map<string, Set<Perm>>();
  const add = (p: string | undefined, perm: Perm) => {
    if (!p || !p.startsWith("/")) return; // sockets, anon inodes, relative names
    const key = isDir(p) && !p.endsWith("/") ? `${p}/` : p;
    (out.get(key) ?? out.set(key, new Set()).get(key)!).add(perm);
  };
  const pending = new Map<string, string>();
  for (const raw of trace.split("\n")) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    let line = m[2]!;
    if (line.endsWith("<unfinished ...>")) { pending.set(m[1]!, line.slice(0, -"<unfinished ...>".length)); continue; }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (resumed) { line = (pending.get(m[1]!) ?? "") + resumed[1]; pending.delete(m[1]!); }
    if (/= -1 /.test(line)) continue; // failed: the kernel refused before or without AppArmor
    const call = /^(\w+)\(/.exec(line)?.[1];
    const ret = /= \d+<([^>]+)>$/.exec(line)?.[1];
    const strs = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((s) => s[1]!);
    if (call === "openat" || call === "open" || call === "creat") {
      const flags = /, (O_[A-Z_|]+)/.exec(line)?.[1] ?? "";
      if (flags.includes("O_PATH")) continue;
      const target = ret ?? strs[0];
      if (/O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/.test(flags) || call === "creat") add(target, "w");
      if (!flags.includes("O_WRONLY")) add(target, "r");
    } else if (call === "execve") add(strs[0], "x");
    else if (call === "mmap" && /PROT_EXEC/.test(line)) add(/, \d+<([^>]+)>, /.exec(line)?.[1], "m");
    else if (call === "flock") add(/^flock\(\d+<([^>]+)>/.exec(line)?.[1], "k");
    else if ((call === "sendto" || call === "connect" || call === "sendmsg") && /sun_path="/.test(line)) add(/sun_path="([^"]+)"/.exec(line)?.[1], "w");
    else if (call && /^(mkdir|mkdirat|unlink|unlinkat|rmdir|rename|renameat|renameat2|chmod|fchmodat|truncate)$/.test(call)) for (const s of strs) add(s, "w");
  }
  return out;
}

describe.skipIf(!live)("live systemd: the AppArmor profile covers what the units run", () => {
  const sys = live!;

  test("every file access of the pre-start verify, serve (chat, reload, stop) and the daily check (verify, audit anchor) and the 5-minute audit anchor is granted by the profile", async () => {
    const r = sys.exec([put(sys, await builtBinary(), "appliance"), "install", "--model", put(sys, await tinyModel(), "tiny.gguf", 0o644)], { timeoutMs: T });
    expect(r.code).toBe(0);
    const key = printedKey(r.out);
    const unit = fs.readFileSync(path.join(sys.root, "etc/systemd/system/appliance.service"), "utf8");
    expect(unit).toContain("AppArmorProfile=appliance"); // no AppArmor in this kernel: systemd ignores it, the service runs
    expect(active(sys)).toBe("active");

    // The same commands, each under strace (strace needs ptrace: the syscall filter is reset; serve is strace's
    // child, so its READY=1 is accepted from any process of the unit).
    const dropIn = (unitName: string, body: string) => {
      const dir = path.join(sys.root, `etc/systemd/system/${unitName}.d`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "strace.conf"), `[Service]\nSystemCallFilter=\nExecPaths=/usr/bin/strace\n${body}`);
    };
    dropIn("appliance.service", `NotifyAccess=all
ExecStartPre=
ExecStartPre=${STRACE} -o ${LOGS}/trace.pre ${BIN} verify --quiet --skip-models --pre-start
ExecStart=
ExecStart=${STRACE} -o ${LOGS}/trace.serve ${BIN} serve
ExecReload=
ExecReload=${STRACE} -o ${LOGS}/trace.reload ${BIN} reload --pid $MAINPID
`);
    // The daily check is root without CAP_DAC_OVERRIDE: it cannot create files in the service's log dir.
    // Every ExecStart= of the installed unit (verify, then the audit anchor) is traced, as the unit has it;
    // -A appends, so both daily runs below are in the trace.
    fs.mkdirSync(path.join(sys.root, "srv/appliance-trace"), { recursive: true });
    const dailyCmds = [...fs.readFileSync(path.join(sys.root, "etc/systemd/system/appliance-verify.service"), "utf8")
      .matchAll(/^ExecStart=([-@:+!]*)(.+)$/gm)].map((m) => ({ prefix: m[1]!, cmd: m[2]! }));
    expect(dailyCmds.map((c) => c.cmd.split(" ").slice(1, 3).join(" "))).toEqual(["verify", "audit anchor"]);
    const daily = dailyCmds.map((_, i) => `daily${i}`);
    dropIn("appliance-verify.service", `ReadWritePaths=/srv/appliance-trace\nExecStart=\n${dailyCmds
      .map((c, i) => `ExecStart=${c.prefix}${STRACE} -A -o /srv/appliance-trace/trace.${daily[i]} ${c.cmd}\n`).join("")}`);
    // The 5-minute audit anchor (appliance-anchor.service, root): its one ExecStart=, traced the same way.
    const anchorCmds = [...fs.readFileSync(path.join(sys.root, "etc/systemd/system/appliance-anchor.service"), "utf8")
      .matchAll(/^ExecStart=([-@:+!]*)(.+)$/gm)].map((m) => ({ prefix: m[1]!, cmd: m[2]! }));
    expect(anchorCmds.map((c) => c.cmd.split(" ").slice(1, 3).join(" "))).toEqual(["audit anchor"]);
    dropIn("appliance-anchor.service", `ReadWritePaths=/srv/appliance-trace\nExecStart=\nExecStart=${anchorCmds[0]!.prefix}${STRACE} -A -o /srv/appliance-trace/trace.anchor ${anchorCmds[0]!.cmd}\n`);
    expect(sys.exec(["systemctl", "daemon-reload"]).code).toBe(0);
    const restart = sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T });
    if (restart.code !== 0) console.log(journal(sys, "-u", "appliance.service", "-n", "40"));
    expect(restart.err).toBe("");
    const chat = curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { key, body: { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 } });
    expect(chat.status).toBe(200);
    expect(sys.exec(["systemctl", "reload", "appliance.service"]).code).toBe(0);
    // The audit record of the chat is on disk before the first daily run, so it has something to anchor: the
    // first run creates the anchor file, the second reads it back (and appends the second chat's record).
    const auditLog = path.join(sys.root, "var/lib/appliance/audit.jsonl");
    for (const deadline = Date.now() + 60_000; !(fs.existsSync(auditLog) && fs.statSync(auditLog).size > 0);) {
      if (Date.now() > deadline) throw new Error("no audit record after the chat");
      await Bun.sleep(100);
    }
    const startDaily = () => {
      const r = sys.exec(["systemctl", "start", "appliance-verify.service"], { timeoutMs: T });
      if (r.code !== 0) console.log(journal(sys, "-u", "appliance-verify.service", "-n", "30"));
      expect(r.code).toBe(0);
    };
    startDaily();
    expect(fs.existsSync(path.join(sys.root, ANCHORS.slice(1)))).toBe(true);
    expect(curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { key, body: { model: "tiny", messages: [{ role: "user", content: "again" }], max_tokens: 4 } }).status).toBe(200);
    startDaily();
    // The anchor run after one more record: it reads the anchor file, resumes from the recorded position, appends.
    expect(curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { key, body: { model: "tiny", messages: [{ role: "user", content: "more" }], max_tokens: 4 } }).status).toBe(200);
    const anchorRun = sys.exec(["systemctl", "start", "appliance-anchor.service"], { timeoutMs: T });
    if (anchorRun.code !== 0) console.log(journal(sys, "-u", "appliance-anchor.service", "-n", "30"));
    expect(anchorRun.code).toBe(0);
    expect(journal(sys, "-u", "appliance-anchor.service", "-n", "5")).toMatch(/new record\(s\) verified since the last anchor/);
    expect(sys.exec(["systemctl", "stop", "appliance.service"], { timeoutMs: T }).code).toBe(0);

    const profile = fs.readFileSync(path.join(sys.root, "etc/apparmor.d/usr.local.bin.appliance"), "utf8");
    // The abstractions the profile includes come from Debian's apparmor package (scripts/test-tools.sh installs it).
    expect(fs.existsSync("/etc/apparmor.d/abstractions/base")).toBe(true);
    const rules = new AppArmorRules(profile);
    const isDir = (p: string) => { try { return fs.statSync(path.join(sys.root, p)).isDirectory(); } catch { return false; } };
    const denied: string[] = [];
    let checked = 0;
    const anchorPerms = new Set<Perm>();
    for (const name of ["pre", "serve", "reload", ...daily, "anchor"]) {
      const file = path.join(sys.root, name.startsWith("daily") || name === "anchor" ? "srv/appliance-trace" : LOGS.slice(1), `trace.${name}`);
      expect(fs.existsSync(file)).toBe(true);
      for (const [p, perms] of accesses(fs.readFileSync(file, "utf8"), isDir)) {
        if (p.startsWith(`${LOGS}/trace.`) || p.startsWith("/srv/appliance-trace/")) continue; // strace's own output
        if (p === ANCHORS) perms.forEach((perm) => anchorPerms.add(perm));
        for (const perm of perms) { checked++; if (!rules.allows(p, perm)) denied.push(`${name}: ${perm} ${p}`); }
      }
    }
    // The anchor step was traced doing its work (created/appended, then read back), not skipped.
    expect([...anchorPerms].sort()).toEqual(["r", "w"]);
    console.log(`apparmor coverage: ${checked} (path, permission) pairs used by the unit's commands, ${denied.length} not granted`);
    expect(checked).toBeGreaterThan(50);
    expect([...new Set(denied)].sort()).toEqual([]);
  }, T);
});
