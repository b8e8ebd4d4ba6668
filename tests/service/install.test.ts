/**
 * install --root into a temp dir, checked with the real tools: systemd-analyze
 * verify (fails on ANY warning: v252 exits 0 on unknown keys) and security,
 * python3's plistlib, apparmor_parser. Then tamper tests and update/rollback
 * with the real compiled binary.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { main } from "../../src/main";
import { layout } from "../../src/service/layout";
import { builtBinary, tinyModel, tmpDir, until, withTemplate } from "../helpers";

let bin: string;
beforeAll(async () => { bin = await builtBinary(); });

function cli(args: string[]) {
  const r = Bun.spawnSync([bin, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}
const sha = (f: string) => new Bun.CryptoHasher("sha256").update(fs.readFileSync(f)).digest("hex");
const modeOf = (p: string) => "0" + (fs.statSync(p).mode & 0o777).toString(8);
/** Runs `check` with `p` tampered (its mode set to `mode`, or its owner made nobody's), then puts it back. */
function tampered(p: string, how: "mode" | "owner", mode: number, check: () => void) {
  const st = fs.statSync(p);
  if (how === "mode") fs.chmodSync(p, mode); else fs.chownSync(p, 65534, st.gid);
  try { check(); } finally { fs.chmodSync(p, st.mode & 0o7777); fs.chownSync(p, st.uid, st.gid); }
}

describe("systemd install under --root", () => {
  let root: string;
  let first: ReturnType<typeof cli>;
  beforeAll(async () => {
    root = tmpDir("appliance-root-");
    first = cli(["install", "--root", root, "--platform", "systemd", "--model", await tinyModel(), "--binary", bin]);
  });

  test("every file, mode and owner as specified; the first key is printed once", () => {
    expect(first.code).toBe(0);
    const l = layout("systemd", root);
    const expected: [string, string][] = [
      [l.configDir, "0750"], [l.stateDir, "0750"], [l.modelsDir, "0750"], [l.logDir, "0750"], [l.bin, "0755"],
      [l.configFile, "0640"], [l.binDigest, "0644"], [path.join(l.stateDir, "keys.json"), "0600"],
      [path.join(l.modelsDir, "tiny.gguf"), "0440"], [path.join(l.modelsDir, "CHECKSUMS.sha256"), "0640"],
      [l.units["appliance.service"]!, "0644"], [l.units["appliance-verify.service"]!, "0644"], [l.units["appliance-verify.timer"]!, "0644"],
      [l.apparmorProfile!, "0644"],
    ];
    for (const [p, mode] of expected) expect({ p, mode: modeOf(p) }).toEqual({ p, mode });
    const receipt = JSON.parse(fs.readFileSync(path.join(l.configDir, "install-receipt.json"), "utf8"));
    const owner = (p: string) => receipt.files.find((f: { path: string }) => f.path === p)?.owner;
    expect(owner("/usr/local/bin/appliance")).toBe("root");
    expect(owner("/etc/appliance")).toBe("root:appliance");
    expect(owner("/etc/appliance/config.json")).toBe("root:appliance");
    expect(owner("/var/lib/appliance")).toBe("appliance:appliance");
    expect(fs.readFileSync(l.binDigest, "utf8")).toBe(`${sha(bin)}  /usr/local/bin/appliance\n`);
    const key = /^(apk_[0-9a-f]{16}_[A-Za-z0-9_-]{43})$/m.exec(first.out)?.[1];
    expect(key).toBeDefined();
    expect(fs.readFileSync(path.join(l.stateDir, "keys.json"), "utf8")).not.toContain(key!.slice(21));
    const unit = fs.readFileSync(l.units["appliance.service"]!, "utf8");
    expect(unit).toContain("ExecStart=/usr/local/bin/appliance serve");
    expect(unit).toContain("User=appliance");
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute/m);
    expect(fs.readFileSync(l.units["appliance-verify.timer"]!, "utf8")).toMatch(/OnCalendar=\*-\*-\* 06:00:00[\s\S]*Persistent=true/);
    // No engine built under this root: install says the service runs the prebuilt libraries, and how to build one.
    expect(first.out).toContain("engine: node-llama-cpp's prebuilt llama.cpp libraries");
    expect(first.out).toContain("sudo appliance engine build");
  });

  test("a second run changes nothing and says so", async () => {
    const before = fs.readdirSync(root, { recursive: true }).map((f) => `${f}:${fs.statSync(path.join(root, String(f))).mtimeMs}`);
    const again = cli(["install", "--root", root, "--platform", "systemd", "--model", await tinyModel(), "--binary", bin]);
    expect(again.code).toBe(0);
    expect(again.out.trim()).toBe("nothing to change: the installation is up to date");
    const after = fs.readdirSync(root, { recursive: true }).map((f) => `${f}:${fs.statSync(path.join(root, String(f))).mtimeMs}`);
    expect(after).toEqual(before);
  });

  test("a --model llama.cpp cannot load (truncated) is refused before anything is written", async () => {
    const fresh = tmpDir("appliance-badmodel-");
    const cut = path.join(fresh, "cut.gguf");
    fs.copyFileSync(await tinyModel(), cut);
    fs.truncateSync(cut, 400_000);
    const root = path.join(fresh, "root");
    fs.mkdirSync(root);
    const r = cli(["install", "--root", root, "--platform", "systemd", "--model", cut, "--binary", bin]);
    expect(r.err).toContain("truncated");
    expect(r.code).toBe(1);
    expect(fs.readdirSync(root)).toEqual([]);
    fs.rmSync(fresh, { recursive: true, force: true });
  });

  // install --model runs serve's template trial as models add does (cccd42b): node-llama-cpp's own resolution falls
  // back from a template that raises, so the trial load passes and only the template trial can refuse it.
  test("a --model whose chat template serve would refuse (it raises) is refused before anything is written", async () => {
    const fresh = tmpDir("appliance-badtemplate-");
    const bad = await withTemplate("{{ raise_exception('no') }}", path.join(fresh, "bad.gguf"));
    const root = path.join(fresh, "root");
    fs.mkdirSync(root);
    const r = cli(["install", "--root", root, "--platform", "systemd", "--model", bad, "--binary", bin]);
    expect(r.err).toContain("bad.gguf");
    expect(r.err).toMatch(/template/i);
    expect(r.code).toBe(1);
    expect(fs.readdirSync(root)).toEqual([]);
    fs.rmSync(fresh, { recursive: true, force: true });
  }, 180_000);

  test("--dry-run prints every action and file and writes nothing", async () => {
    const fresh = tmpDir("appliance-dry-");
    const r = cli(["install", "--root", fresh, "--platform", "systemd", "--dry-run", "--binary", bin]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("would write");
    expect(r.out).toContain("    | [Service]");
    expect(r.out).toContain("would create the first API key");
    expect(fs.readdirSync(fresh)).toEqual([]);
  });

  // An operator run: install --port 0 was saved, and then status, update and rollback refused ("--port must be 1-65535").
  test("--port 0 is refused (exit 2, nothing written): an installed service needs a fixed port", () => {
    const fresh = tmpDir("appliance-root-port0-");
    try {
      const r = cli(["install", "--root", fresh, "--platform", "systemd", "--binary", bin, "--port", "0"]);
      expect(r.err).toContain("--port 0 picks a new port at every start");
      expect(r.code).toBe(2);
      expect(fs.readdirSync(fresh)).toEqual([]);
    } finally {
      fs.rmSync(fresh, { recursive: true, force: true });
    }
  });

  test("--dry-run on the real root refuses a taken port as the install would (exit 2, nothing written)", async () => {
    // The dry run skipped the check, so its preview showed a plan the real install refuses.
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen({ host: "127.0.0.1", port: 0 }, resolve));
    try {
      const port = (squatter.address() as net.AddressInfo).port;
      const r = cli(["install", "--platform", "systemd", "--dry-run", "--binary", bin, "--port", String(port)]);
      expect(r.err).toContain(`port ${port} on 127.0.0.1 is in use by another program`);
      expect(r.code).toBe(2);
      expect(r.out).not.toContain("dry run: nothing was changed");
    } finally {
      squatter.close();
    }
  });

  test("systemd-analyze verify passes with no warnings, and security passes the threshold with exposure <= 0.9", () => {
    fs.cpSync("/usr/lib/systemd/system", path.join(root, "usr/lib/systemd/system"), { recursive: true }); // targets the units refer to
    const units = Object.values(layout("systemd", root).units);
    const v = Bun.spawnSync(["systemd-analyze", "verify", `--root=${root}`, ...units], { stderr: "pipe", stdout: "pipe" });
    expect(v.stderr.toString() + v.stdout.toString()).toBe("");
    expect(v.exitCode).toBe(0);
    const s = Bun.spawnSync(["systemd-analyze", "security", "--offline=true", `--root=${root}`, "--threshold=9", "appliance.service"], { stderr: "pipe", stdout: "pipe" });
    expect(s.exitCode).toBe(0);
    const exposure = Number(/Overall exposure level for appliance\.service: ([\d.]+)/.exec(s.stdout.toString())?.[1]);
    expect(exposure).toBeLessThanOrEqual(0.9);
  });

  test("the AppArmor profile passes the real parser", () => {
    const r = Bun.spawnSync(["apparmor_parser", "-QTK", layout("systemd", root).apparmorProfile!], { stderr: "pipe" });
    expect(r.exitCode).toBe(0);
    // verify's egress probe (UDP) must reach the unit's IP filter: an AppArmor EACCES would pass it with TCP open.
    const profile = fs.readFileSync(layout("systemd", root).apparmorProfile!, "utf8");
    expect(profile).toMatch(/^\s*network inet dgram,$/m);
    expect(profile).toContain("/usr/local/lib/appliance/native/** mr,");
    // Confines what the units run (AppArmorProfile=), not every use of the binary by path: root's update,
    // rollback, uninstall, status and doctor write /usr/local/bin and /etc and run systemctl, unconfined.
    expect(profile).toMatch(/^profile appliance flags=\(enforce\) \{$/m);
    expect(profile).not.toMatch(/^profile appliance \/\S+/m);
    for (const u of ["appliance.service", "appliance-verify.service"]) {
      expect(fs.readFileSync(layout("systemd", root).units[u]!, "utf8")).toMatch(/^AppArmorProfile=appliance$/m);
    }
    // The GPU preflight re-runs the binary in the same profile; sd_notify goes to systemd's socket.
    expect(profile).toContain("/usr/local/bin/appliance mrix,");
    expect(profile).toContain("/run/systemd/notify w,");
  });

  test("verify passes on the fresh install; --json is machine-readable", () => {
    const r = cli(["verify", "--root", root, "--platform", "systemd", "--json"]);
    const report = JSON.parse(r.out);
    expect(report.checks.filter((c: { status: string }) => c.status === "fail")).toEqual([]);
    expect(r.code).toBe(0);
    // The native libraries install wrote under the root are the ones checked (they were looked for in <root>/var/lib…).
    const native = report.checks.find((c: { name: string }) => c.name === "native");
    expect(native).toMatchObject({ status: "ok", detail: expect.stringContaining(path.join(root, "usr/local/lib/appliance/native")) });
  });

  test("tamper: one flipped byte in a model → verify exits 1 naming the file, serve refuses to start (exit 4)", () => {
    const l = layout("systemd", root);
    const model = path.join(l.modelsDir, "tiny.gguf");
    const original = fs.readFileSync(model);
    const bytes = Buffer.from(original);
    bytes[5000] = bytes[5000]! ^ 0x01;
    fs.chmodSync(model, 0o640);
    fs.writeFileSync(model, bytes);
    try {
      const r = cli(["verify", "--root", root, "--platform", "systemd"]);
      expect(r.code).toBe(1);
      expect(r.out).toContain(`✗ models`);
      expect(r.out).toContain(model);
      const s = cli(["serve", "--state-dir", l.stateDir, "--port", "0"]);
      expect(s.code).toBe(4); // a failed integrity check: not restarted by the unit (RestartPreventExitStatus)
      expect(s.err).toContain("does not match the manifest");
    } finally {
      fs.writeFileSync(model, original);
      fs.chmodSync(model, 0o440);
    }
  });

  test("tamper: a changed binary fails verify; a world-readable keys file fails verify", () => {
    const l = layout("systemd", root);
    const original = fs.readFileSync(l.bin);
    fs.appendFileSync(l.bin, "x");
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).out).toMatch(/✗ binary .*expected sha256/);
    fs.writeFileSync(l.bin, original);
    const keys = path.join(l.stateDir, "keys.json");
    fs.chmodSync(keys, 0o644);
    const r = cli(["verify", "--root", root, "--platform", "systemd"]);
    fs.chmodSync(keys, 0o600);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/✗ files .*keys\.json has mode 0644/);
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).code).toBe(0);
  });

  // Claims audit (stop 74): the binary and its recorded sha256 were checked only against each other, so whoever could
  // write both (a chmod, a chown to the service account, a writable dir above) replaced what root's timers run.
  test("tamper: the binary or its recorded sha256 (or a dir above) that others than root may write fails verify", () => {
    const l = layout("systemd", root);
    for (const [p, how] of [[l.bin, "mode"], [l.bin, "owner"], [path.dirname(l.bin), "mode"], [l.binDigest, "mode"], [l.binDigest, "owner"], [l.configDir, "owner"]] as const) {
      tampered(p, how, 0o777, () => {
        const r = cli(["verify", "--root", root, "--platform", "systemd"]);
        expect({ p, how, code: r.code }).toEqual({ p, how, code: 1 });
        expect(r.out).toContain("✗ binary");
        expect(r.out).toContain(`others than root could replace it and its recorded sha256 alike: ${p} (uid ${how === "mode" ? 0 : 65534}`);
      });
    }
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).code).toBe(0);
  });

  // Claims audit (stop 74): the models dir sits in the service account's state dir; the account could move it aside
  // and put its own there (a changed model, a manifest to match) and verify passed; nor did it look at the anchors' dir.
  test("tamper: a models dir or an audit-anchor dir that is not root's (or an anchor dir others may enter) fails verify", () => {
    const l = layout("systemd", root);
    for (const [p, how, says] of [[l.modelsDir, "owner", "not root's, as install made them"], [l.anchorDir, "owner", "not root's, as install made them"],
      [l.anchorDir, "mode", "is not root-only (0755, want 0700)"]] as const) {
      tampered(p, how, 0o755, () => {
        const r = cli(["verify", "--root", root, "--platform", "systemd"]);
        expect({ p, how, code: r.code }).toEqual({ p, how, code: 1 });
        expect(r.out).toMatch(/✗ directories/);
        expect(r.out).toContain(says);
        expect(r.out).toContain(p);
      });
    }
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).code).toBe(0);
  });

  // Claims audit (stop 74): only the unit's own Environment= lines were read, not its drop-ins or EnvironmentFile=.
  test("a secret set for the service in a drop-in or an EnvironmentFile fails verify's environment check", () => {
    const l = layout("systemd", root);
    const dir = `${l.units["appliance.service"]!}.d`;
    fs.mkdirSync(dir, { recursive: true });
    try {
      for (const [conf, extra, says] of [["Environment=OPENAI_API_KEY=sk-x\n", undefined, "secret-looking variables set: OPENAI_API_KEY"],
        ["EnvironmentFile=-/etc/appliance/extra.env\n", "HF_TOKEN=hf_x\n", "secret-looking variables set: HF_TOKEN"],
        // attack on the fix: a quoted assignment, a continued line
        ['Environment="HF_HUB_OFFLINE=0"\n', undefined, "HF_HUB_OFFLINE is not 1"], ["Environment=A=1 \\\n  OPENAI_API_KEY=sk-x\n", undefined, "OPENAI_API_KEY"],
        ["Environment = OPENAI_API_KEY=sk-x\n", undefined, "OPENAI_API_KEY"]] as const) {
        fs.writeFileSync(path.join(dir, "zz.conf"), `[Service]\n${conf}`);
        if (extra) fs.writeFileSync(path.join(l.configDir, "extra.env"), extra);
        const r = cli(["verify", "--root", root, "--platform", "systemd"]);
        expect({ conf, code: r.code }).toEqual({ conf, code: 1 });
        expect(r.out).toMatch(/✗ environment/);
        expect(r.out).toContain(says);
      }
      // a drop-in under /run, or one for every service
      for (const other of ["run/systemd/system/appliance.service.d", "etc/systemd/system/service.d"]) {
        fs.rmSync(path.join(dir, "zz.conf"));
        fs.mkdirSync(path.join(root, other), { recursive: true });
        fs.writeFileSync(path.join(root, other, "a.conf"), "[Service]\nEnvironment=GITHUB_TOKEN=x\n");
        expect(cli(["verify", "--root", root, "--platform", "systemd"]).out).toContain("secret-looking variables set: GITHUB_TOKEN");
        fs.rmSync(path.join(root, other), { recursive: true });
        fs.writeFileSync(path.join(dir, "zz.conf"), "[Service]\n");
      }
      // no false failures: a harmless name, a quoted value in an environment file
      fs.writeFileSync(path.join(dir, "zz.conf"), "[Service]\nEnvironment=TOKENIZERS_PARALLELISM=false\nEnvironmentFile=/etc/appliance/extra.env\n");
      fs.writeFileSync(path.join(l.configDir, "extra.env"), 'HF_HUB_OFFLINE="1"\n');
      const clean = cli(["verify", "--root", root, "--platform", "systemd"]);
      expect(clean.out).toMatch(/✓ environment/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(path.join(l.configDir, "extra.env"), { force: true });
    }
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).code).toBe(0);
  });

  test("the service account: a login shell or an admin group fails verify", () => {
    const etc = path.join(root, "etc");
    fs.writeFileSync(path.join(etc, "passwd"), "root:x:0:0::/root:/bin/bash\nappliance:x:990:990::/var/lib/appliance:/usr/sbin/nologin\n");
    fs.writeFileSync(path.join(etc, "group"), "root:x:0:\nappliance:x:990:\nsudo:x:27:\n");
    expect(cli(["verify", "--root", root, "--platform", "systemd", "--json"]).out).toMatch(/"name": "account",\s*"status": "ok"/);
    fs.writeFileSync(path.join(etc, "group"), "root:x:0:\nappliance:x:990:\nsudo:x:27:appliance\n");
    fs.writeFileSync(path.join(etc, "passwd"), "appliance:x:990:990::/var/lib/appliance:/bin/bash\n");
    const r = cli(["verify", "--root", root, "--platform", "systemd"]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/✗ account .*login shell \/bin\/bash; member of sudo/);
    // Claims audit (stop 74): groups as good as root, and a sudoers grant, passed as "no admin group".
    fs.writeFileSync(path.join(etc, "passwd"), "appliance:x:990:990::/var/lib/appliance:/usr/sbin/nologin\n");
    for (const g of ["docker", "lxd", "disk", "shadow"]) {
      fs.writeFileSync(path.join(etc, "group"), `root:x:0:\nappliance:x:990:\n${g}:x:27:appliance\n`);
      const v = cli(["verify", "--root", root, "--platform", "systemd"]);
      expect({ g, code: v.code }).toEqual({ g, code: 1 });
      expect(v.out).toMatch(new RegExp(`✗ account .*member of ${g}`));
    }
    fs.writeFileSync(path.join(etc, "group"), "root:x:0:\nappliance:x:990:\nops:x:50:appliance\n");
    fs.mkdirSync(path.join(etc, "sudoers.d"), { recursive: true });
    // and (attack on the fix) a comma list, the uid, a group's gid
    for (const line of ["appliance ALL=(ALL) NOPASSWD: ALL", "%ops ALL=(ALL) ALL", "bob,appliance ALL=(ALL) NOPASSWD: ALL", "#990 ALL=(ALL) ALL", "%#50 ALL=(ALL) ALL",
      // second attack on the fix
      "ALL ALL=(ALL) NOPASSWD: ALL", "root, appliance ALL=(ALL) NOPASSWD: ALL", '"appliance" ALL=(ALL) ALL', "%:ops ALL=(ALL) ALL"]) {
      fs.writeFileSync(path.join(etc, "sudoers.d", "appliance"), `# added\n${line}\n`);
      const v = cli(["verify", "--root", root, "--platform", "systemd"]);
      expect({ line, code: v.code }).toEqual({ line, code: 1 });
      expect(v.out).toContain(`named in sudoers: ${path.join(etc, "sudoers.d", "appliance")}: ${line}`);
    }
    fs.rmSync(path.join(etc, "sudoers.d"), { recursive: true });
    // a dir sudoers includes
    fs.mkdirSync(path.join(etc, "sudoers.local.d"), { recursive: true });
    fs.writeFileSync(path.join(etc, "sudoers"), "Defaults env_reset\n@includedir /etc/sudoers.local.d\n");
    fs.writeFileSync(path.join(etc, "sudoers.local.d", "x"), "appliance ALL=(ALL) ALL\n");
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).out).toContain(`named in sudoers: ${path.join(etc, "sudoers.local.d", "x")}`);
    fs.rmSync(path.join(etc, "sudoers.local.d"), { recursive: true });
    // a relative include, read from the including file's dir (second attack on the fix)
    fs.writeFileSync(path.join(etc, "sudoers"), "@include sudoers.local\n");
    fs.writeFileSync(path.join(etc, "sudoers.local"), "appliance ALL=(ALL) ALL\n");
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).out).toContain(`named in sudoers: ${path.join(etc, "sudoers.local")}`);
    fs.rmSync(path.join(etc, "sudoers.local"));
    fs.rmSync(path.join(etc, "sudoers"));
    fs.writeFileSync(path.join(etc, "group"), "root:x:0:\nappliance:x:990:\nincus-admin:x:51:appliance\n");
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).out).toMatch(/✗ account .*member of incus-admin/);
    fs.writeFileSync(path.join(etc, "group"), "root:x:0:\nappliance:x:990:\n");
    expect(cli(["verify", "--root", root, "--platform", "systemd"]).out).toMatch(/✓ account/);
    fs.rmSync(path.join(etc, "passwd"));
    fs.rmSync(path.join(etc, "group"));
  });

  test("update: a healthy binary is swapped in; one that cannot install its libraries is refused; one that cannot serve is rolled back; rollback by hand", async () => {
    const l = layout("systemd", root);
    const before = sha(l.bin);
    const dead = path.join(tmpDir(), "dead");
    fs.writeFileSync(dead, "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n", { mode: 0o755 });
    const refused = cli(["update", "--root", root, "--platform", "systemd", "--binary", dead, "--sha256", sha(dead)]);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain("update refused before changing anything: the new binary cannot install its native libraries");
    expect(fs.existsSync(l.binBackup)).toBe(false); // nothing was switched
    expect(sha(l.bin)).toBe(before);
    // Passes the native step (as a build without embedded libraries answers it) but cannot serve.
    const broken = path.join(tmpDir(), "broken");
    fs.writeFileSync(broken, "#!/bin/sh\n[ \"$1\" = install ] && { echo 'native: none'; exit 0; }\necho 'cannot start' >&2\nexit 3\n", { mode: 0o755 });
    const bad = cli(["update", "--root", root, "--platform", "systemd", "--binary", broken, "--sha256", sha(broken)]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain("rolling back");
    expect(bad.out).toContain("rolled back to the previous binary; it is healthy");
    expect(sha(l.bin)).toBe(before);
    expect(cli(["verify", "--root", root, "--platform", "systemd", "--quiet"]).code).toBe(0);

    const wrong = cli(["update", "--root", root, "--platform", "systemd", "--binary", broken, "--sha256", "0".repeat(64)]);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain("refusing");

    const next = path.join(tmpDir(), "appliance-next");
    fs.copyFileSync(bin, next);
    fs.appendFileSync(next, Buffer.alloc(16)); // a different, still working binary
    const native = path.join(root, "usr/local/lib/appliance/native");
    const [version] = fs.readdirSync(native);
    fs.mkdirSync(path.join(native, "0.0.1-stale")); // the libraries of a binary neither installed nor .previous
    const good = cli(["update", "--root", root, "--platform", "systemd", "--binary", next, "--sha256", sha(next)]);
    expect(good.out).toContain("update complete");
    expect(good.code).toBe(0);
    expect(fs.readdirSync(native)).toEqual([version!]); // kept: the one both binaries use; the stale one removed
    expect(sha(l.bin)).toBe(sha(next));
    expect(cli(["verify", "--root", root, "--platform", "systemd", "--quiet"]).code).toBe(0);
    const back = cli(["rollback", "--root", root, "--platform", "systemd"]);
    expect(back.code).toBe(0);
    expect(sha(l.bin)).toBe(before);
  });

  // Operations run: update hashed --binary by its path, then copied it by its path again and ran the copy as root
  // (install --native-only): a file swapped in while it hashed ran as root and was installed under the signed digest.
  test("update: what is checked is what runs; a file swapped in while it is read is never run", async () => {
    const l = layout("systemd", root);
    const before = sha(l.bin);
    const dir = tmpDir();
    const source = path.join(dir, "appliance-new"), evil = path.join(dir, "evil"), marker = path.join(dir, "RAN-AS-ROOT");
    // Refused by the native step, and large enough (128 MB of comment the shell never reads) that reading it takes a while.
    fs.writeFileSync(source, "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n");
    fs.appendFileSync(source, Buffer.alloc(128 << 20, "#"));
    fs.chmodSync(source, 0o755);
    fs.writeFileSync(evil, `#!/bin/sh\ntouch ${marker}\nexit 1\n`, { mode: 0o755 });
    const proc = Bun.spawn([bin, "update", "--root", root, "--platform", "systemd", "--binary", source, "--sha256", sha(source)], { stdout: "pipe", stderr: "pipe" });
    // The moment update holds --binary open, the path is pointed at another file (an unprivileged writer of the
    // download directory could do the same).
    const holds = () => { try { return fs.readdirSync(`/proc/${proc.pid}/fd`).some((fd) => fs.readlinkSync(`/proc/${proc.pid}/fd/${fd}`) === source); } catch { return false; } };
    let swapped = false;
    await until(() => {
      if (!swapped && holds()) { fs.renameSync(evil, source); swapped = true; }
      return proc.exitCode !== null || swapped ? true : undefined;
    }, 60_000, "update to open --binary");
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(1);
    expect(swapped).toBe(true);
    expect(fs.existsSync(marker)).toBe(false);
    expect(out).toContain("update refused before changing anything: the new binary cannot install its native libraries");
    expect(sha(l.bin)).toBe(before);
    expect(fs.readdirSync(path.dirname(l.bin)).filter((f) => f.includes("update-tmp"))).toEqual([]);
  });

  // Fix-attack run: the service account owns the state and log dirs, so it can plant links there; install again (as
  // root, as README says to after a config change) chmod-ed/chown-ed and wrote through them: a root-only file became
  // readable to the account, and models were written into a directory it chose.
  test("install again refuses links planted in the service account's directories, changing nothing through them", () => {
    const l = layout("systemd", root);
    const victims = tmpDir();
    const file = path.join(victims, "root-only"), dir = path.join(victims, "dir");
    fs.writeFileSync(file, "secret", { mode: 0o600 });
    fs.mkdirSync(dir, { mode: 0o700 });
    const alerts = path.join(l.logDir, "verify-alerts.log"), verifyDir = path.join(l.logDir, "verify");
    const saved = { alerts: fs.readFileSync(alerts), verifyDir: fs.readdirSync(verifyDir) };
    const plant = (at: string, target: string) => { fs.rmSync(at, { recursive: true, force: true }); fs.symlinkSync(target, at); };
    try {
      for (const [at, target] of [[alerts, file], [verifyDir, dir]] as const) {
        plant(at, target);
        const again = cli(["install", "--root", root, "--platform", "systemd", "--binary", bin]);
        expect(again.code).not.toBe(0);
        expect(again.out + again.err).toContain(`${at} is a symbolic link`);
        expect(modeOf(file)).toBe("0600");
        expect(modeOf(dir)).toBe("0700");
        expect(fs.readdirSync(dir)).toEqual([]);
        fs.rmSync(at);
        if (at === alerts) fs.writeFileSync(alerts, saved.alerts, { mode: 0o660 });
        else fs.mkdirSync(verifyDir, { mode: 0o750 });
      }
    } finally {
      for (const at of [alerts, verifyDir]) if (fs.lstatSync(at, { throwIfNoEntry: false })?.isSymbolicLink()) fs.rmSync(at);
    }
    expect(cli(["install", "--root", root, "--platform", "systemd", "--binary", bin]).code).toBe(0); // put back as it was
  });

  test("uninstall keeps models, keys, logs and the operator's drop-ins; --purge removes them", () => {
    const l = layout("systemd", root);
    // Live-service run: a plain uninstall removed the README's GPU drop-in, which its "uninstall, then install" recipe
    // (re-measuring a start) relies on; the README says --purge removes drop-ins.
    const dropIn = `${l.units["appliance.service"]!}.d`;
    fs.mkdirSync(dropIn, { recursive: true });
    fs.writeFileSync(path.join(dropIn, "gpu.conf"), "[Service]\nPrivateDevices=no\n");
    // Names a crash in the middle of an update or rollback leaves beside the binary.
    for (const tmp of [".appliance.rollback-tmp", "appliance.link-tmp", "appliance.update-tmp"]) fs.writeFileSync(path.join(path.dirname(l.bin), tmp), "x");
    expect(cli(["uninstall", "--root", root, "--platform", "systemd"]).code).toBe(0);
    expect(fs.readdirSync(path.dirname(l.bin)).filter((f) => f.includes("appliance"))).toEqual([]);
    expect(fs.existsSync(path.join(dropIn, "gpu.conf"))).toBe(true);
    expect(fs.existsSync(l.units["appliance.service"]!)).toBe(false);
    expect(fs.existsSync(l.bin)).toBe(false);
    expect(fs.existsSync(path.join(l.stateDir, "keys.json"))).toBe(true);
    expect(fs.existsSync(path.join(l.modelsDir, "tiny.gguf"))).toBe(true);
    expect(cli(["uninstall", "--root", root, "--platform", "systemd", "--purge"]).code).toBe(0);
    expect(fs.existsSync(l.stateDir)).toBe(false);
    expect(fs.existsSync(dropIn)).toBe(false);
  });
});

describe("launchd install under --root", () => {
  test("serve --launchd (the plist's command): a config error or failed verify ends with exit 0, so KeepAlive does not respawn it", () => {
    const home = tmpDir("appliance-launchd-");
    const r = Bun.spawnSync([bin, "serve", "--launchd", "--port", "99999", "--state-dir", home], { stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin", HOME: home } });
    expect(r.stderr.toString()).toContain("staying stopped");
    expect(r.exitCode).toBe(0);
    const dry = cli(["install", "--root", home, "--platform", "launchd", "--binary", bin, "--dry-run"]);
    expect(dry.out).toContain("    |     <string>--launchd</string>"); // what the installer would write, printed by --dry-run
    fs.rmSync(home, { recursive: true, force: true });
  });

  test("plists parse with python3's plistlib and carry the hardening keys", async () => {
    const root = tmpDir("appliance-mac-");
    const r = cli(["install", "--root", root, "--platform", "launchd", "--binary", bin]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("block out quick proto { tcp udp } user _appliance"); // printed, not applied, without --firewall
    const l = layout("launchd", root);
    const py = `import plistlib,sys,json\nprint(json.dumps([plistlib.load(open(f,'rb')) for f in sys.argv[1:]]))`;
    const p = Bun.spawnSync(["python3", "-c", py, l.units["local.appliance.server.plist"]!, l.units["local.appliance.verify.plist"]!, l.units["local.appliance.anchor.plist"]!], { stderr: "pipe" });
    expect(p.stderr.toString()).toBe("");
    const [server, verify, anchor] = JSON.parse(p.stdout.toString());
    // The audit anchor every 5 minutes runs as root (no UserName) into a root-only directory made by install.
    expect(anchor.UserName).toBeUndefined();
    expect(anchor).toMatchObject({ Label: "local.appliance.anchor", StartInterval: 300, Umask: 63, ProcessType: "Background" });
    expect(anchor.ProgramArguments).toEqual(["/usr/local/bin/appliance", "audit", "anchor", "--state-dir", "/Library/Application Support/appliance",
      "--to", "/var/db/appliance-anchor/audit.anchors", "--alert-dir", "/Library/Logs/appliance"]);
    expect(anchor.StandardOutPath).toBe(verify.StandardOutPath); // a log newsyslog rotates
    const anchorDir = fs.statSync(path.join(root, "var/db/appliance-anchor"));
    expect([anchorDir.uid, anchorDir.mode & 0o777]).toEqual([0, 0o700]);
    expect(server).toMatchObject({
      Label: "local.appliance.server", ProgramArguments: ["/usr/local/bin/appliance", "serve", "--launchd"], UserName: "_appliance", GroupName: "_appliance",
      RunAtLoad: true, KeepAlive: { SuccessfulExit: false }, Umask: 63, ProcessType: "Standard", ThrottleInterval: 10,
      SoftResourceLimits: { NumberOfFiles: 65536, Core: 0 }, HardResourceLimits: { NumberOfFiles: 65536, Core: 0 },
      EnvironmentVariables: { HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1", DO_NOT_TRACK: "1" },
    });
    expect(server.StandardOutPath).toBe("/Library/Logs/appliance/appliance.log");
    expect(server.StandardErrorPath).toBe("/Library/Logs/appliance/appliance.err.log");
    expect(verify.StartCalendarInterval).toEqual({ Hour: 6, Minute: 0 });
    expect(verify.ProgramArguments).toEqual(["/usr/local/bin/appliance", "verify"]);
    // The daily verify runs as the service account (not root), low priority, with small limits (launchd.plist(5)).
    expect(verify).toMatchObject({
      UserName: "_appliance", GroupName: "_appliance", Nice: 10, LowPriorityIO: true, ProcessType: "Background",
      SoftResourceLimits: { NumberOfFiles: 1024, NumberOfProcesses: 16, Core: 0 }, HardResourceLimits: { NumberOfFiles: 1024, NumberOfProcesses: 16, Core: 0 },
    });
  });

  test("newsyslog config: every log the launchd jobs write is rotated; the audit log uncompressed, as audit verify walks it", () => {
    const root = tmpDir("appliance-mac-");
    expect(cli(["install", "--root", root, "--platform", "launchd", "--binary", bin]).code).toBe(0);
    const l = layout("launchd", root), sys = layout("launchd");
    expect(l.logrotate).toBe(path.join(root, "etc/newsyslog.d/appliance.conf"));
    const lines = fs.readFileSync(l.logrotate!, "utf8").split("\n").filter((s) => s.trim() && !s.startsWith("#"));
    // newsyslog.conf(5): logfile [owner:group] mode count size when flags, whitespace-separated (so no spaces in names).
    const entries = lines.map((s) => s.trim().split(/\s+/));
    for (const e of entries) {
      expect(e).toHaveLength(7);
      expect(e[1]).toMatch(/^[\w]+:[\w]+$/);
      expect(e[2]).toMatch(/^[0-7]{3}$/);
      expect(e[3]).toMatch(/^\d+$/);
      expect(e[4]).toMatch(/^(\d+|\*)$/);
      expect(e[6]).toContain("G"); // names are shell patterns: "?" stands for the space in "Application Support"
    }
    const glob = (p: string) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\?/g, ".").replace(/\*/g, "[^/]*")}$`);
    const rotated = (file: string) => entries.find((e) => glob(e[0]!).test(file));
    const audit = rotated(path.join(sys.stateDir, "audit.jsonl"));
    expect(audit?.[6]).toBe("GNB"); // uncompressed (no J/Z) and no "turned over" line inside the chain
    expect(audit?.[1]).toBe("_appliance:_appliance");
    expect(rotated(path.join(sys.logDir, "verify-alerts.log"))?.[1]).toBe("root:_appliance");
    const server = JSON.parse(Bun.spawnSync(["python3", "-c", "import plistlib,sys,json;print(json.dumps([plistlib.load(open(f,'rb')) for f in sys.argv[1:]]))",
      l.units["local.appliance.server.plist"]!, l.units["local.appliance.verify.plist"]!]).stdout.toString()) as { StandardOutPath: string; StandardErrorPath: string }[];
    for (const job of server) for (const f of [job.StandardOutPath, job.StandardErrorPath]) expect(rotated(f)).toBeDefined();
    expect(cli(["uninstall", "--root", root, "--platform", "launchd"]).code).toBe(0);
    expect(fs.existsSync(l.logrotate!)).toBe(false);
  });
});

test("doctor runs on this machine without crashing and reports each check", async () => {
  const r = cli(["doctor", "--json"]);
  expect([0, 1]).toContain(r.code ?? -1);
  const names = JSON.parse(r.out).checks.map((c: { name: string }) => c.name);
  expect(names).toEqual(["disk-encryption", "mac", "firewall", "auto-updates", "systemd", "egress-lock"]);
  expect(await main(["doctor", "--bogus"])).toBe(2);
});
