/**
 * Resilience run, through the compiled binary: what a full disk and an unreadable models dir looked like to the operator.
 * A write to the models dir that fit only in part (a full disk) went unnoticed, and `models add` then blamed the source
 * ("invalid GGUF … truncated?"); a models dir the server's account cannot read said "the manifest lists none".
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel, tmpDir } from "../helpers";

/** Another process holding `lockFile` (flock) until it is killed; resolves once it holds it. */
async function holdLock(lockFile: string) {
  const holder = Bun.spawn(["flock", lockFile, "-c", "echo held; cat"], { stdin: "pipe", stdout: "pipe" });
  expect(new TextDecoder().decode((await holder.stdout.getReader().read()).value)).toBe("held\n");
  return holder;
}

/** What `proc` wrote on stderr up to the first time it says `text` (or its end). */
async function stderrUntil(proc: { stderr: ReadableStream<Uint8Array> }, text: string): Promise<string> {
  const err = proc.stderr.getReader();
  let said = "";
  while (!said.includes(text)) {
    const r = await err.read();
    if (r.done) break;
    said += new TextDecoder().decode(r.value);
  }
  err.releaseLock();
  return said;
}

test("models add when the disk fills during the last write: the error says the write failed, not that the source is bad", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-fsize-"), src = await tinyModel();
  const size = fs.statSync(src).size;
  // RLIMIT_FSIZE as a full disk: the write that crosses it is cut short, the next one fails (EFBIG; SIGXFSZ ignored).
  const r = Bun.spawnSync(["sh", "-c", `trap '' XFSZ; exec prlimit --fsize=${size - 1000} "$0" models add "$1" --models-dir "$2"`, bin, src, path.join(dir, "models")],
    { env: { PATH: "/usr/bin:/bin", HOME: dir } });
  const err = r.stderr.toString();
  expect(r.exitCode).toBe(1);
  expect(err).toContain("EFBIG");
  expect(err).not.toContain("invalid GGUF");
  // nothing half-copied left (the models dir this add made is removed again)
  const models = path.join(dir, "models");
  expect(fs.existsSync(models) ? fs.readdirSync(models).filter((f) => f.endsWith(".gguf")) : []).toEqual([]);
});

test.skipIf(process.getuid?.() !== 0 || !Bun.which("setpriv"))("serve as an account that cannot read the models dir: says so, not 'the manifest lists none'", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-eacces-");
  fs.chmodSync(dir, 0o755);
  const models = path.join(dir, "models"), state = path.join(dir, "state");
  expect(Bun.spawnSync([bin, "models", "add", await tinyModel(), "--models-dir", models], { env: { PATH: "/usr/bin:/bin", HOME: dir } }).exitCode).toBe(0);
  fs.chmodSync(models, 0o700); // root's alone
  fs.mkdirSync(state, { mode: 0o700 });
  fs.chownSync(state, 65534, 65534);
  const r = Bun.spawnSync(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "serve", "--models-dir", models, "--state-dir", state, "--port", "0"],
    { env: { PATH: "/usr/bin:/bin", HOME: state }, timeout: 60_000 });
  const err = r.stderr.toString();
  expect(r.exitCode).not.toBe(0);
  expect(err).toContain("cannot be read (EACCES)");
  expect(err).not.toContain("lists none");
});

// Ops run (stop 73): with a manifest it could not read (a hand-added comment line), `models add` failed — after renaming
// the new bytes over the served model, so the manifest named the old ones and the next start exited 4; a new name left
// its file behind, which verify then called unlisted.
test("models add refused by a manifest it cannot read leaves the models dir as it was (copy and --link, same name and new)", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-badmanifest-");
  const models = path.join(dir, "models"), env = { PATH: "/usr/bin:/bin", HOME: dir };
  const add = (...args: string[]) => Bun.spawnSync([bin, "models", "add", ...args, "--models-dir", models], { env });
  expect(add(await tinyModel(), "--name", "m").exitCode).toBe(0);
  const served = fs.readFileSync(path.join(models, "m.gguf"));
  fs.appendFileSync(path.join(models, "CHECKSUMS.sha256"), "# a note\n");
  const listing = () => fs.readdirSync(models).sort();
  const before = listing();
  const other = path.join(dir, "other.gguf");
  fs.copyFileSync(await tinyModel({ seed: 7 }), other);
  for (const args of [["--name", "m"], ["--name", "n"], ["--name", "m", "--link"], ["--name", "n", "--link"]]) {
    const r = add(other, ...args);
    expect([r.exitCode, r.stderr.toString()], args.join(" ")).toEqual([1, expect.stringContaining("CHECKSUMS.sha256")]);
    expect(listing(), args.join(" ")).toEqual(before);
    expect(fs.readFileSync(path.join(models, "m.gguf")).equals(served), args.join(" ")).toBe(true);
  }
});

// Ops run (stop 73): a model file and its manifest any local user could rewrite (consistently) passed verify.
test("verify fails a model file or the manifest that group or others may write", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-modelmodes-");
  const state = path.join(dir, "state"), env = { PATH: "/usr/bin:/bin", HOME: dir };
  expect(Bun.spawnSync([bin, "models", "add", await tinyModel(), "--name", "m", "--state-dir", state], { env }).exitCode).toBe(0);
  const verify = () => Bun.spawnSync([bin, "verify", "--state-dir", state], { env });
  const models = path.join(state, "models");
  for (const f of ["m.gguf", "CHECKSUMS.sha256"]) {
    fs.chmodSync(path.join(models, f), 0o666);
    const r = verify();
    expect([r.exitCode, r.stdout.toString()], f).toEqual([1, expect.stringContaining(`writable by group or others: ${path.join(models, f)} (0666)`)]);
    fs.chmodSync(path.join(models, f), 0o440);
  }
  expect(verify().stdout.toString()).toMatch(/✓ directories/);
});

// Attack on the fixes (stop 73): with the manifest's lock held by another process, models add waited saying nothing.
test("models add waiting for the manifest's lock says so, and adds the model once it is released", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-lockwait-");
  const models = path.join(dir, "models"), env = { PATH: "/usr/bin:/bin", HOME: dir };
  expect(Bun.spawnSync([bin, "models", "add", await tinyModel(), "--name", "m", "--models-dir", models], { env }).exitCode).toBe(0);
  const lock = path.join(models, "CHECKSUMS.sha256.lock");
  const holder = await holdLock(lock);
  const add = Bun.spawn([bin, "models", "add", await tinyModel(), "--name", "n", "--models-dir", models], { env, stderr: "pipe" });
  try {
    const said = await stderrUntil(add, "waiting for");
    expect(said).toContain(`waiting for ${lock}: another process is changing this models dir's manifest`);
    holder.stdin.end(); // cat ends, flock releases
    expect(await add.exited).toBe(0);
    expect(fs.readFileSync(path.join(models, "CHECKSUMS.sha256"), "utf8")).toContain("n.gguf");
  } finally {
    holder.kill();
    add.kill();
  }
});

// Stop 73's left list: Ctrl-C (or SIGTERM) during `models add` left its private copy (the model's size, a hidden
// `.<name>.<pid>.<hex>.tmp`) in the models dir, and while it waited for the manifest's lock it did not stop at all
// (blocked in flock(2), the signal never reached JavaScript). Fails before: the add ran on once the lock was released.
test.each([["SIGINT", 130], ["SIGTERM", 143]] as const)("models add stopped by %s while it waits for the lock: exits at once, no copy left", async (signal, code) => {
  const bin = await builtBinary(), dir = tmpDir("appliance-addsig-");
  const models = path.join(dir, "models"), env = { PATH: "/usr/bin:/bin", HOME: dir };
  expect(Bun.spawnSync([bin, "models", "add", await tinyModel(), "--name", "m", "--models-dir", models], { env }).exitCode).toBe(0);
  const before = fs.readdirSync(models).sort();
  const lock = path.join(models, "CHECKSUMS.sha256.lock");
  const holder = await holdLock(lock);
  const add = Bun.spawn([bin, "models", "add", await tinyModel(), "--name", "n", "--models-dir", models], { env, stderr: "pipe" });
  try {
    const said = await stderrUntil(add, "waiting for");
    expect(said).toContain("waiting for");
    expect(fs.readdirSync(models).some((f) => f.startsWith(".n.gguf.") && f.endsWith(".tmp"))).toBe(true); // the copy it made
    add.kill(signal);
    // The lock is still held: the add must end on the signal itself (an upper bound, not a sleep; it ends in ms).
    const ended = await Promise.race([add.exited, new Promise<"still running">((r) => setTimeout(() => r("still running"), 20_000))]);
    expect(ended).toBe(code);
    expect(fs.readdirSync(models).sort()).toEqual(before);
  } finally {
    holder.kill();
    add.kill("SIGKILL");
  }
});

// Attack on the fix (stop 74): SIGTERM during the trial load ended `models add` but left its trial child running,
// orphaned, on the deleted copy (a large model's disk space and memory held until it finished).
test("models add stopped while its trial load runs: the trial child ends too", async () => {
  const bin = await builtBinary(), dir = tmpDir("appliance-addtrial-");
  const state = path.join(dir, "state"), env = { PATH: "/usr/bin:/bin", HOME: dir };
  expect(Bun.spawnSync([bin, "models", "add", await tinyModel(), "--name", "m", "--state-dir", state], { env }).exitCode).toBe(0);
  // The trial waits for the native libraries' lock while another process holds it: the add is then mid-trial.
  const lock = path.join(state, "native.lock");
  const holder = await holdLock(lock);
  const add = Bun.spawn([bin, "models", "add", await tinyModel(), "--name", "n", "--state-dir", state], { env, stderr: "pipe" });
  const trialsOf = () => Bun.spawnSync(["pgrep", "-f", `models preflight ${path.join(state, "models")}`]).stdout.toString().trim().split("\n").filter(Boolean);
  try {
    const said = await stderrUntil(add, "it holds");
    expect(said).toContain("it holds");
    expect(trialsOf().length).toBe(1);
    add.kill("SIGTERM");
    expect(await add.exited).toBe(143);
    const child = Bun.spawnSync(["pgrep", "-f", `models preflight ${path.join(state, "models")}`]);
    expect(child.stdout.toString().trim()).toBe(""); // SIGKILLed by the add before it exited: gone by now
    expect(fs.readdirSync(path.join(state, "models")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  } finally {
    holder.kill();
    add.kill("SIGKILL");
    for (const pid of trialsOf()) process.kill(Number(pid), "SIGKILL");
  }
});
