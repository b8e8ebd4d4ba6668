/** util/: the one sha256 (bytes, path, descriptor), atomic durable replace, and the cross-process file lock. */
import { afterAll, expect, test } from "bun:test";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic, writeFilesAtomic } from "../../src/util/atomic-write";
import { withFileLock } from "../../src/util/file-lock";
import { NotPlainFileError, openPlainFile, readFd } from "../../src/util/fs";
import { sha256Bytes, sha256Fd, sha256FdSync, sha256File } from "../../src/util/sha256";
import { tmpDir } from "../helpers";

const dir = tmpDir("appliance-util-");
// A real full disk: a 64 KiB tmpfs (root only; where it cannot be mounted the test is skipped, and says so).
const full = path.join(dir, "full");
fs.mkdirSync(full);
const mounted = process.getuid?.() === 0 && Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", full]).exitCode === 0;
if (!mounted) console.warn("writeFileAtomic full-disk test SKIPPED: it mounts a 64 KiB tmpfs (root and mount needed)");
afterAll(() => {
  if (mounted) Bun.spawnSync(["umount", full]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("sha256 of bytes, path and descriptor agree with node:crypto, across chunk boundaries", async () => {
  const data = crypto.randomBytes((4 << 20) + 12345);
  const file = path.join(dir, "blob");
  fs.writeFileSync(file, data);
  const want = crypto.createHash("sha256").update(data).digest("hex");
  expect(sha256Bytes(data)).toBe(want);
  expect(await sha256File(file)).toBe(want);
  const fd = fs.openSync(file, "r");
  try {
    let last = 0;
    expect(await sha256Fd(fd, (done) => { last = done; })).toBe(want);
    expect(last).toBe(data.length);
    expect(sha256FdSync(fd)).toBe(want);
    expect(readFd(fd).equals(data)).toBe(true);
  } finally { fs.closeSync(fd); }
});

test("a descriptor keeps hashing the bytes it opened even after the path is swapped", async () => {
  const file = path.join(dir, "swap");
  fs.writeFileSync(file, "original");
  const fd = fs.openSync(file, "r");
  try {
    fs.writeFileSync(`${file}.new`, "attacker");
    fs.renameSync(`${file}.new`, file);
    expect(await sha256Fd(fd)).toBe(sha256Bytes("original"));
  } finally { fs.closeSync(fd); }
});

test("writeFileAtomic replaces with the given mode, leaves no temp file, and never writes through a planted symlink", () => {
  const file = path.join(dir, "data.json");
  writeFileAtomic(file, "one", { mode: 0o600 });
  writeFileAtomic(file, "two", { mode: 0o640 });
  expect(fs.readFileSync(file, "utf8")).toBe("two");
  expect(fs.statSync(file).mode & 0o777).toBe(0o640);
  expect(fs.readdirSync(dir).filter((f) => f.includes("data.json"))).toEqual(["data.json"]);
  const victim = path.join(dir, "victim");
  fs.writeFileSync(victim, "keep");
  const link = path.join(dir, "link.json");
  fs.symlinkSync(victim, link);
  writeFileAtomic(link, "new"); // replaces the link itself, not the file it points at
  expect(fs.readFileSync(victim, "utf8")).toBe("keep");
  expect(fs.lstatSync(link).isSymbolicLink()).toBe(false);
});

test("writeFilesAtomic writes a set across directories with their modes; a failed rename leaves no temp file behind", () => {
  const base = fs.mkdtempSync(path.join(dir, "many-"));
  fs.mkdirSync(path.join(base, "sub"));
  writeFilesAtomic([
    { file: path.join(base, "a.so"), data: new Uint8Array([1, 2, 3]), opts: { mode: 0o500 } },
    { file: path.join(base, "sub", "b.json"), data: "bee", opts: { mode: 0o444 } },
  ]);
  expect([...fs.readFileSync(path.join(base, "a.so"))]).toEqual([1, 2, 3]);
  expect(fs.readFileSync(path.join(base, "sub", "b.json"), "utf8")).toBe("bee");
  expect(fs.statSync(path.join(base, "a.so")).mode & 0o777).toBe(0o500);
  expect(fs.statSync(path.join(base, "sub", "b.json")).mode & 0o777).toBe(0o444);
  // A non-empty directory where the second file goes: its rename fails; the first file is in place, no temp is left.
  fs.mkdirSync(path.join(base, "blocked"));
  fs.writeFileSync(path.join(base, "blocked", "inside"), "x");
  expect(() => writeFilesAtomic([{ file: path.join(base, "c"), data: "see" }, { file: path.join(base, "blocked"), data: "no" }, { file: path.join(base, "d"), data: "dee" }])).toThrow();
  expect(fs.readFileSync(path.join(base, "c"), "utf8")).toBe("see");
  expect(fs.readdirSync(base).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  expect(fs.readdirSync(path.join(base, "sub")).sort()).toEqual(["b.json"]);
});

test.skipIf(!mounted)("writeFileAtomic on a full disk fails and leaves the old file whole (a short write was renamed over it)", () => {
  const file = path.join(full, "keys.json");
  fs.writeFileSync(file, "good");
  expect(() => writeFileAtomic(file, new Uint8Array(100 * 1024).fill(65))).toThrow(/ENOSPC|short write/);
  expect(fs.readFileSync(file, "utf8")).toBe("good");
  expect(fs.readdirSync(full)).toEqual(["keys.json"]); // no temp file left behind
});

test("openPlainFile refuses a symlink and a directory", () => {
  const target = path.join(dir, "plain");
  fs.writeFileSync(target, "x");
  fs.symlinkSync(target, path.join(dir, "sym"));
  expect(() => openPlainFile(path.join(dir, "sym"))).toThrow(NotPlainFileError);
  expect(() => openPlainFile(path.join(dir, "sym"))).toThrow(/symbolic link/);
  expect(() => openPlainFile(dir)).toThrow(/directory/);
  fs.closeSync(openPlainFile(target));
});

test("withFileLock makes a second process wait until the first is done", async () => {
  const file = path.join(dir, "locked.json");
  const script = `const { withFileLock } = await import(${JSON.stringify(path.resolve("src/util/file-lock.ts"))});
    await withFileLock(process.env.LOCK_FILE!, () => { require("node:fs").appendFileSync(process.env.LOCK_FILE!, "child\\n"); },
      { onWait: () => console.error("waiting") });`;
  let child: ReturnType<typeof Bun.spawn> | undefined;
  await withFileLock(file, async () => {
    fs.appendFileSync(file, "parent-start\n");
    child = Bun.spawn([process.execPath, "-e", script], { stderr: "pipe", stdout: "ignore", env: { ...process.env, LOCK_FILE: file } });
    // The child says it is waiting (it found the lock taken) before we finish: an event, not a sleep.
    const reader = (child.stderr as ReadableStream<Uint8Array>).getReader();
    let err = "";
    while (!err.includes("waiting")) {
      const { value, done } = await reader.read();
      if (done) break;
      err += new TextDecoder().decode(value);
    }
    expect(err).toContain("waiting");
    fs.appendFileSync(file, "parent-end\n");
  });
  expect(await child!.exited).toBe(0);
  expect(fs.readFileSync(file, "utf8")).toBe("parent-start\nparent-end\nchild\n");
});
