/**
 * The CLI's contracts as a user meets them: the compiled binary run with flags typed wrong, left empty, doubled or
 * belonging to another subcommand (a CLI-and-config run found each of these doing something other than saying so).
 * Exit codes as the README gives them: 0 ok, 1 failure, 2 usage/config error, 4 a model failed its integrity check.
 */
import { beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel, tmpDir } from "../helpers";
import { jsonErrorAt } from "../../src/config/json-error-at";

let bin = "";
let home = "";
beforeAll(async () => {
  bin = await builtBinary();
  home = tmpDir();
});

/** One run of the binary with a HOME of its own (no installed config is read: every command names its state dir). */
function run(args: string[], env: Record<string, string> = {}) {
  const r = Bun.spawnSync([bin, ...args], { env: { PATH: "/usr/bin:/bin", HOME: home, ...env }, cwd: home });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

function keysIn(stateDir: string) {
  return JSON.parse(run(["keys", "list", "--json", "--state-dir", stateDir]).out) as { name: string; revoked: string | null; rpm: number | null }[];
}

test("keys revoke NAME NAME revokes both; with one unknown name it revokes none (the second key stayed live, exit 0)", () => {
  const s = tmpDir();
  for (const n of ["a", "b", "c"]) expect(run(["keys", "create", "--name", n, "--state-dir", s]).code).toBe(0);
  const both = run(["keys", "revoke", "a", "b", "--state-dir", s]);
  expect(both.code).toBe(0);
  expect(both.out).toContain("revoked a, b");
  expect(keysIn(s).filter((k) => k.revoked).map((k) => k.name).sort()).toEqual(["a", "b"]);
  const partly = run(["keys", "revoke", "c", "nosuch", "--state-dir", s]);
  expect(partly.code).toBe(1);
  expect(partly.err).toContain("no active key named nosuch (nothing revoked)");
  expect(keysIn(s).find((k) => k.name === "c")!.revoked).toBeNull();
  expect(run(["keys", "rotate", "c", "a", "--state-dir", s]).code).toBe(2);
});

test("an empty or blank limit is a usage error, not 'no limit'; so are an expiry of 0, one past the calendar and a bad name", () => {
  const s = tmpDir();
  for (const args of [["--rpm", ""], ["--tpm", " "], ["--max-concurrent", "1.5"], ["--expires", "0d"], ["--expires", "99999999999w"], ["--name", "ünï"]]) {
    const r = run(["keys", "create", "--name", "k", ...args, "--state-dir", s]);
    expect({ args, code: r.code }).toEqual({ args, code: 2 });
    expect(r.out).toBe(""); // no key printed
  }
  expect(fs.readdirSync(s)).toEqual([]); // nothing written for a refused command
  expect(run(["keys", "create", "--name", "k", "--rpm", "0", "--state-dir", s]).code).toBe(0);
  expect(keysIn(s)[0]!.rpm).toBe(0);
});

test("a flag of another keys/models subcommand is refused; so are extra PATHs and NAMEs", () => {
  const s = tmpDir();
  expect(run(["keys", "create", "--name", "f", "--grace", "1h", "--state-dir", s]).code).toBe(2);
  expect(run(["keys", "list", "--all", "--state-dir", s]).code).toBe(2);
  const add = run(["models", "add", "one.gguf", "two.gguf", "--state-dir", s]);
  expect(add.code).toBe(2);
  expect(add.err).toContain("models add takes one PATH");
  expect(run(["models", "remove", "a", "b", "--state-dir", s]).code).toBe(2);
  expect(run(["models", "list", "--link", "--state-dir", s]).code).toBe(2);
  expect(run(["version", "--bogus"]).code).toBe(2);
});

test("keys on a state dir with no keys file: nothing is created; list says so and exits 0, revoke exits 1", () => {
  const s = path.join(tmpDir(), "typo");
  const revoke = run(["keys", "revoke", "x", "--state-dir", s]);
  expect(revoke.code).toBe(1);
  expect(revoke.err).toContain("no keys file at");
  const list = run(["keys", "list", "--state-dir", s]);
  expect(list.code).toBe(0);
  expect(list.err).toContain("no keys file at");
  expect(fs.existsSync(s)).toBe(false);
});

test("--root naming a dir with nothing installed is an error, not the caller's own state dir", () => {
  const typo = path.join(tmpDir(), "typo");
  for (const args of [["lockdown"], ["verify"], ["incident", "snapshot", "--out", path.join(home, "x.tar.gz")]]) {
    const r = run([...args, "--root", typo]);
    expect({ args, code: r.code }).toEqual({ args, code: 2 });
    expect(r.err).toContain(`nothing is installed under --root ${typo}`);
  }
  expect(fs.existsSync(path.join(home, ".local"))).toBe(false); // the default state dir under this HOME was never touched
});

test("a model path that is not there, or two models with one name, is a usage error (2), not an integrity failure (4)", async () => {
  const s = tmpDir(), dir = tmpDir();
  const missing = run(["serve", "--state-dir", s, "--model", path.join(dir, "typo.gguf"), "--port", "0"]);
  expect(missing.code).toBe(2);
  expect(missing.err).toContain("does not exist");
  const other = tmpDir();
  for (const d of [dir, other]) fs.copyFileSync(await tinyModel(), path.join(d, "a.gguf"));
  const twice = run(["serve", "--state-dir", s, "--model", path.join(dir, "a.gguf"), "--model", path.join(other, "a.gguf"), "--allow-unverified", "--port", "0"]);
  expect(twice.code).toBe(2);
  expect(twice.err).toContain("two models are named a");
  expect(fs.existsSync(path.join(s, "logs", "verify-alerts.log"))).toBe(false);
  const typo = path.join(s, "typo"); // no models there: refused before anything is made
  expect(run(["serve", "--state-dir", typo, "--port", "0"]).code).toBe(2);
  expect(fs.existsSync(typo)).toBe(false);
});

test("settings: memoryMax in plain bytes from a flag or variable; --auth with --no-auth refused; a bad boolean variable named", () => {
  const byFlag = run(["config", "print", "--memory-max", "1024"]);
  expect(byFlag.code).toBe(0);
  expect(JSON.parse(byFlag.out).memoryMax).toBe("1024");
  expect(JSON.parse(run(["config", "print"], { APPLIANCE_MEMORY_MAX: "2048" }).out).memoryMax).toBe("2048");
  expect(JSON.parse(run(["config", "print", "--gpu-layers", "3"]).out).gpuLayers).toBe(3);
  const gpu = run(["config", "print", "--gpu-layers", "all"]);
  expect(gpu.err).toContain("auto or a whole number");
  expect(run(["config", "print", "--port", "99999999999999999999"]).err).toContain("<=65535");
  for (const args of [["--no-auth", "--auth"], ["--auth", "--no-auth"]]) {
    const r = run(["config", "print", ...args]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("--auth and --no-auth both given");
  }
  const env = run(["config", "print"], { APPLIANCE_AUTH: "maybe" });
  expect(env.code).toBe(2);
  expect(env.err).toContain("APPLIANCE_AUTH expects true or false");
});

test("config print masks credentials in any URL (a query's values, a user part) and shows an empty secret empty", () => {
  const file = path.join(tmpDir(), "c.json");
  fs.writeFileSync(file, JSON.stringify({ upstreams: [{ url: "http://127.0.0.1:9/v1?api_key=SEKRET3&x=1", models: ["m2"] },
    { url: "https://TOKEN9@127.0.0.1:9/v1", models: ["m3"] }] }));
  const r = run(["config", "print", "--config", file]);
  expect(r.code).toBe(0);
  expect(r.out).not.toContain("SEKRET3");
  expect(r.out).not.toContain("TOKEN9");
  const ups = JSON.parse(r.out).upstreams;
  expect(ups[0].url).toBe("http://127.0.0.1:9/v1?api_key=[redacted]&x=[redacted]");
  expect(ups[0].apiKey ?? "").toBe("");
});

test("a config file that is not JSON says where; a YAML file is told it is not read", () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, "a.json"), '{\n "port": 8000,\n "host": "x"\n,}');
  fs.writeFileSync(path.join(dir, "b.yaml"), "port: 8000\n");
  const json = run(["config", "validate", path.join(dir, "a.json")]);
  expect(json.code).toBe(2);
  expect(json.err).toContain("at line 4, column 2");
  expect(run(["config", "validate", path.join(dir, "b.yaml")]).err).toContain("YAML is not read");
  expect(jsonErrorAt('{"a":[1,2,]}')).toBe("line 1, column 11");
  expect(jsonErrorAt('{"a":{"b":[1,{"c":null}]},"d":"\\u00e9"}')).toBeUndefined();
  expect(jsonErrorAt("[".repeat(100_000) + "]".repeat(100_000))).toBeUndefined(); // no recursion to overflow
});

test("no command at all: the help on stderr with exit 2; --help on stdout with exit 0; engine's usage once", () => {
  const none = run([]);
  expect(none.code).toBe(2);
  expect(none.out).toBe("");
  expect(none.err).toContain("usage: appliance COMMAND");
  const help = run(["--help"]);
  expect(help.code).toBe(0);
  expect(help.out).toContain("usage: appliance COMMAND");
  expect(run(["engine"]).err.match(/usage:/g)).toHaveLength(1);
});

/** `reload --pid` of a process that is no appliance server: refused, and the process is left alone (ended by our SIGTERM). */
async function reloadRefuses(cmd: string[], cwd?: string) {
  const child = Bun.spawn(cmd, { cwd, stdout: "ignore", stderr: "ignore" });
  try {
    const r = run(["reload", "--pid", String(child.pid)]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("is not an appliance server");
  } finally {
    child.kill("SIGTERM");
    await child.exited;
  }
  expect(child.signalCode).toBe("SIGTERM"); // not a SIGHUP from reload
}

test("reload signals only an appliance server: a mistyped pid's process is left alone", async () => {
  await reloadRefuses(["sleep", "30"]);
});

test("status reads a hand-run server's state dir: its lockdown is reported", () => {
  const s = tmpDir();
  expect(run(["lockdown", "--state-dir", s, "--reason", "drill"]).code).toBe(0);
  const r = run(["status", "--state-dir", s, "--port", "9"]);
  expect(r.out).toContain("lockdown:  ON");
});

test("audit verify names the --checkpoints file that is missing, not the audit log", () => {
  const s = tmpDir();
  const r = run(["audit", "verify", "--state-dir", s, "--checkpoints", path.join(s, "none.txt")]);
  expect(r.code).toBe(2);
  expect(r.err).toContain(`${path.join(s, "none.txt")}: ENOENT`);
});

// Fix-attack run on the fixes above: the same defects through other doors.
test("a flag that takes one value given twice is refused (revoke --name a --name b revoked b alone); --version takes nothing more", () => {
  const s = tmpDir();
  for (const n of ["a", "b"]) expect(run(["keys", "create", "--name", n, "--state-dir", s]).code).toBe(0);
  const twice = run(["keys", "revoke", "--name", "a", "--name", "b", "--state-dir", s]);
  expect(twice.code).toBe(2);
  expect(twice.err).toContain("--name given twice");
  expect(keysIn(s).every((k) => k.revoked === null)).toBe(true);
  expect(run(["--version", "extra"]).code).toBe(2);
  expect(run(["audit", "verify", "--to", path.join(s, "anchor"), "--state-dir", s]).code).toBe(2); // anchor's flag
});

test("keys list --json with no keys file prints [] (scripts parse it); models remove on a mistyped state dir makes nothing", () => {
  const typo = path.join(tmpDir(), "typo");
  const list = run(["keys", "list", "--json", "--state-dir", typo]);
  expect([list.code, JSON.parse(list.out)]).toEqual([0, []]);
  expect(run(["models", "remove", "x", "--state-dir", typo]).code).toBe(1);
  expect(fs.existsSync(typo)).toBe(false);
});

test.skipIf(process.getuid?.() !== 0)("keys list on a state dir this user cannot read says permission denied (exit 1), not 'no key was ever created'", () => {
  const s = tmpDir();
  expect(run(["keys", "create", "--name", "a", "--state-dir", s]).code).toBe(0);
  fs.chmodSync(s, 0o700);
  const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "keys", "list", "--state-dir", s], { env: { PATH: "/usr/bin:/bin", HOME: "/tmp" } });
  expect(r.exitCode).toBe(1);
  expect(r.stderr.toString()).toContain("permission denied");
});

test("reload refuses another program whose first argument is serve", async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, "serve"), "");
  await reloadRefuses(["tail", "serve", "-f"], dir);
});

test("status takes its server from APPLIANCE_CONFIG as the other commands do; URLs' fragments and bare query items are masked; a BOM is read", () => {
  const s = tmpDir(), file = path.join(s, "c.json");
  fs.writeFileSync(file, "\uFEFF" + JSON.stringify({ stateDir: s, port: 9, upstreams: [{ url: "https://127.0.0.1:9/v1?TOKEN7#frag=F8", models: ["m"] }] }));
  expect(run(["lockdown", "--config", file]).code).toBe(0);
  expect(run(["status"], { APPLIANCE_CONFIG: file }).out).toContain("lockdown:  ON");
  const printed = run(["config", "print", "--config", file]);
  expect(printed.code).toBe(0);
  expect(JSON.parse(printed.out).upstreams[0].url).toBe("https://127.0.0.1:9/v1?[redacted]#[redacted]");
});

test("verify fails what serve refuses: an audit.key group or others can read, a keys file that does not parse (verify said all passed)", async () => {
  const s = tmpDir();
  expect(run(["models", "add", await tinyModel(), "--state-dir", s]).code).toBe(0);
  expect(run(["keys", "create", "--name", "a", "--state-dir", s]).code).toBe(0);
  expect(run(["verify", "--state-dir", s]).code).toBe(0);
  fs.writeFileSync(path.join(s, "audit.key"), `${"ab".repeat(32)}\n`, { mode: 0o600 });
  fs.chmodSync(path.join(s, "audit.key"), 0o666);
  const exposed = run(["verify", "--state-dir", s]);
  expect(exposed.code).toBe(1);
  expect(exposed.out).toMatch(/audit\.key has mode 0?666/);
  fs.chmodSync(path.join(s, "audit.key"), 0o600);
  expect(run(["verify", "--state-dir", s]).code).toBe(0);
  const keys = path.join(s, "keys.json");
  fs.writeFileSync(keys, fs.readFileSync(keys, "utf8").slice(0, 40));
  const broken = run(["verify", "--state-dir", s]);
  expect(broken.code).toBe(1);
  expect(broken.out).toContain("is not valid JSON");
});

test("verify as a user who cannot look into the state dir says so for the native libraries (it said 'not unpacked yet')", async () => {
  if (process.getuid?.() !== 0) throw new Error("this test runs as root (CI does): it runs verify as nobody through setpriv");
  const s = tmpDir();
  expect(run(["models", "add", await tinyModel(), "--state-dir", s]).code).toBe(0);
  fs.chmodSync(s, 0o700);
  const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "verify", "--state-dir", s], { env: { PATH: "/usr/bin:/bin", HOME: "/" }, cwd: "/" });
  const native = r.stdout.toString().split("\n").find((l) => /^\S+ native /.test(l)) ?? "";
  expect(native).toContain("cannot be read as this user");
  expect(native).not.toContain("not unpacked yet");
});

test("models add of a file that is not a model leaves no state dir behind (a mistyped --state-dir kept an empty models dir)", () => {
  const junk = path.join(tmpDir(), "notes.gguf");
  fs.writeFileSync(junk, "not a model at all\n".repeat(10));
  const s = path.join(tmpDir(), "new-state");
  const r = run(["models", "add", junk, "--state-dir", s]);
  expect(r.code).not.toBe(0);
  expect(fs.existsSync(s)).toBe(false);
});

test("verify names a key that requires signatures but has no Ed25519 public key (made when signatures were HMAC)", () => {
  const s = tmpDir();
  expect(run(["keys", "create", "--name", "signer", "--state-dir", s]).code).toBe(0);
  const file = path.join(s, "keys.json");
  const keys = JSON.parse(fs.readFileSync(file, "utf8")) as { keys: { requireSignature: boolean; signingKey: string | null }[] };
  keys.keys[0]!.requireSignature = true; // what an HMAC-era release wrote: no signingKey
  keys.keys[0]!.signingKey = null;
  fs.writeFileSync(file, JSON.stringify(keys), { mode: 0o600 });
  const r = run(["verify", "--state-dir", s, "--skip-models", "--pre-start"]);
  // a warning, not a failure: the unit's pre-start check must not keep the service (and every other key) from starting
  expect(r.code).toBe(0);
  expect(run(["verify", "--state-dir", s, "--skip-models"]).out).toContain("WARNING: key(s) signer require signed requests but have no Ed25519 public key");
});

test("verify fails an audit.key serve cannot use: not 64 hex digits, or not this user's", async () => {
  const s = tmpDir();
  expect(run(["models", "add", await tinyModel(), "--state-dir", s]).code).toBe(0);
  const key = path.join(s, "audit.key");
  fs.writeFileSync(key, "garbage\n", { mode: 0o600 });
  const garbage = run(["verify", "--state-dir", s, "--skip-models"]);
  expect(garbage.code).toBe(1);
  expect(garbage.out).toContain("is not a 64-hex-digit audit key");
  fs.writeFileSync(key, `${"ab".repeat(32)}\n`, { mode: 0o600 });
  fs.chownSync(key, 65534, 65534);
  const other = run(["verify", "--state-dir", s, "--skip-models"]);
  expect(other.code).toBe(1);
  expect(other.out).toContain("audit.key is owned by uid 65534");
});

// Ops run (stop 73) on the binary: operator commands that did something other than what was meant.
test("keys create with --scopes or --scope given empty is a usage error, not a key with the default inference scopes", () => {
  const s = tmpDir();
  for (const args of [["--scopes", ""], ["--scope", ""], ["--scope", "metrics", "--scope", " "]]) {
    const r = run(["keys", "create", "--name", "scraper", ...args, "--state-dir", s]);
    expect({ args, code: r.code }).toEqual({ args, code: 2 });
    expect(r.err).toContain("given empty");
  }
  expect(fs.existsSync(path.join(s, "keys.json"))).toBe(false);
});

test("--public-key without --require-signature, or a file that is no Ed25519 public key, is a usage error (2)", () => {
  const s = tmpDir(), notKey = path.join(tmpDir(), "not.pub");
  fs.writeFileSync(notKey, "hello\n");
  const pub = path.join(tmpDir(), "c.pub");
  expect(Bun.spawnSync(["sh", "-c", `openssl genpkey -algorithm ed25519 | openssl pkey -pubout -out "${pub}"`]).exitCode).toBe(0);
  const unsigned = run(["keys", "create", "--name", "a", "--public-key", pub, "--state-dir", s]);
  expect([unsigned.code, unsigned.err]).toEqual([2, expect.stringContaining("add --require-signature")]);
  const bad = run(["keys", "create", "--name", "a", "--require-signature", "--public-key", notKey, "--state-dir", s]);
  expect([bad.code, bad.err]).toEqual([2, expect.stringContaining(`--public-key ${notKey}: the public key must be an Ed25519`)]);
  expect(run(["keys", "create", "--name", "a", "--require-signature", "--public-key", pub, "--state-dir", s]).code).toBe(0);
});

test("a second lockdown keeps the first one's record (when, by whom, why): incident evidence", () => {
  const s = tmpDir();
  expect(run(["lockdown", "--state-dir", s, "--reason", "suspected key leak"]).code).toBe(0);
  const first = fs.readFileSync(path.join(s, "lockdown"), "utf8");
  const again = run(["lockdown", "--state-dir", s]);
  expect([again.code, again.out]).toEqual([0, expect.stringContaining(`already in lockdown since ${JSON.parse(first).since}`)]);
  expect(fs.readFileSync(path.join(s, "lockdown"), "utf8")).toBe(first);
});

test("a keys file of the wrong shape is named with the field that is wrong", () => {
  const s = tmpDir();
  fs.chmodSync(s, 0o700);
  for (const [text, at] of [["{}", "at version"], ['{"version":1}', "at keys"]] as const) {
    fs.writeFileSync(path.join(s, "keys.json"), text, { mode: 0o600 });
    const r = run(["keys", "list", "--state-dir", s]);
    expect(r.err).toContain(`is not a valid keys file ${at}:`);
  }
});

test("incident snapshot: a state dir that is not there (exit 1) or an --out in no directory (exit 2) is said before collecting; notes name each cause once", () => {
  const s = tmpDir();
  const missing = run(["incident", "snapshot", "--state-dir", path.join(s, "typo"), "--out", path.join(s, "a.tar.gz")]);
  expect([missing.code, missing.err]).toEqual([1, expect.stringContaining("no state dir at")]);
  const nowhere = run(["incident", "snapshot", "--state-dir", s, "--out", path.join(s, "none", "a.tar.gz")]);
  expect([nowhere.code, nowhere.err]).toEqual([2, expect.stringContaining("is not a directory")]);
  const ok = run(["incident", "snapshot", "--state-dir", s, "--out", path.join(s, "b.tar.gz"), "--pid", "999999", "--port", "1"]);
  expect(ok.code).toBe(0);
  expect(ok.out).toContain("health http://127.0.0.1:1/health: no answer (ECONNREFUSED)");
  expect(ok.out).toContain("process 999999: ENOENT: no such file or directory");
  expect(ok.out).not.toMatch(/ENOENT ENOENT|:  |Is the computer able/);
});

test("models add of a path that is not there, or a file name that is no model name, is a usage error saying what to do", () => {
  const s = tmpDir(), dir = tmpDir();
  const missing = run(["models", "add", path.join(dir, "typo.gguf"), "--state-dir", s]);
  expect([missing.code, missing.err]).toEqual([2, expect.stringContaining(`${path.join(dir, "typo.gguf")} does not exist`)]);
  expect(missing.err).not.toContain("ENOENT");
  fs.writeFileSync(path.join(dir, "my model.gguf"), "x");
  const spaced = run(["models", "add", path.join(dir, "my model.gguf"), "--state-dir", s]);
  expect([spaced.code, spaced.err]).toEqual([2, expect.stringContaining("give one with --name")]);
});

test("a config file holding valid JSON that is not an object says so, not 'not valid JSON'", () => {
  const file = path.join(tmpDir(), "c.json");
  fs.writeFileSync(file, "[]");
  const r = run(["config", "validate", file]);
  expect([r.code, r.err]).toEqual([2, expect.stringContaining("holds a list, not an object of settings")]);
});
