/**
 * util/fs.ts copyHashed, what `update` and `install` stage binaries with. Fix-attack run: fs.copyFileSync gave the
 * staged file the source's mode (0777 from a world-writable download) before update chmod-ed it, so another user
 * could open root's staged binary for writing in that gap and change it after it was hashed; it then ran as root.
 * Real files, real modes; the strace-level race itself is not replayed here (the attack needs a second user).
 */
import { expect, test } from "bun:test";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { copyHashed, NotPlainFileError } from "../../src/util/fs";
import { tmpDir } from "../helpers";

test("the digest is of the bytes written; the copy ends with the mode asked for, not the source's 0777", () => {
  const dir = tmpDir();
  const from = path.join(dir, "download"), to = path.join(dir, "staged");
  const bytes = crypto.randomBytes(3 * (1 << 20) + 17); // several blocks and a partial one
  fs.writeFileSync(from, bytes);
  fs.chmodSync(from, 0o777);
  const digest = copyHashed(from, to, 0o755);
  expect(digest).toBe(crypto.createHash("sha256").update(bytes).digest("hex"));
  expect(Buffer.compare(fs.readFileSync(to), bytes)).toBe(0);
  expect(fs.statSync(to).mode & 0o777).toBe(0o755);
});

test("a planted destination (a symlink aimed elsewhere) is replaced, not written through", () => {
  const dir = tmpDir();
  const from = path.join(dir, "download"), to = path.join(dir, "staged"), victim = path.join(dir, "victim");
  fs.writeFileSync(from, "new binary");
  fs.writeFileSync(victim, "untouched");
  fs.symlinkSync(victim, to);
  copyHashed(from, to, 0o755);
  expect(fs.readFileSync(victim, "utf8")).toBe("untouched");
  expect(fs.lstatSync(to).isSymbolicLink()).toBe(false);
  expect(fs.readFileSync(to, "utf8")).toBe("new binary");
});

test("not a regular file (a directory, /dev/zero, a FIFO nobody writes): refused at once, nothing left behind", () => {
  const dir = tmpDir();
  const to = path.join(dir, "staged"), fifo = path.join(dir, "fifo");
  expect(() => copyHashed(dir, to, 0o755)).toThrow(NotPlainFileError);
  expect(() => copyHashed("/dev/zero", to, 0o755)).toThrow(NotPlainFileError);
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  expect(() => copyHashed(fifo, to, 0o755)).toThrow(NotPlainFileError); // it blocked in open() for good (fix-attack run)
  expect(fs.existsSync(to)).toBe(false);
});
