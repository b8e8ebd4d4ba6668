/**
 * `models add`, safe to run as root on a file in a user-writable directory: the source is opened
 * once (a symlink is refused unless followSymlinks), and everything after that works on the open
 * descriptor. Copy mode copies from it into a private temp file, hashing the bytes as they are
 * written and header-checking that copy, then sets mode and owner on the copy's descriptor and
 * renames it into place. Link mode hashes and checks the descriptor, hard-links the path, and
 * keeps the link only if it is the very inode that was opened (a re-pointed path is refused).
 */
import fs from "node:fs";
import path from "node:path";
import { fsyncDir, NotPlainFileError, openPlainFile, ownerFor, removeEmptyDirs } from "../util/fs";
import { withFileLock } from "../util/file-lock";
import { randomBytes } from "../util/random";
import { sha256Fd, type Progress } from "../util/sha256";
import { checkGgufHeader } from "./gguf-header";
import { manifestPath, readManifest, writeManifest } from "./manifest";
import { HashCache } from "./hash-cache";
import { modelId } from "./resolve";

export class ModelAddError extends Error {}

export interface AddModelOptions {
  src: string;
  dir: string;
  /** Model id (file name without .gguf); default: the source's name. */
  name?: string;
  /** Hard-link instead of copying (same filesystem). */
  link?: boolean;
  /** Accept a symlink as the source (follows it once, at open). */
  followSymlinks?: boolean;
  onProgress?: Progress;
  /** Trial-loads the file that is about to be installed (the private copy or the verified link); throws to refuse it. */
  preflight?: (file: string) => Promise<unknown>;
  /** Told when another process holds the manifest's lock and this add waits for it (it waited saying nothing). */
  onLockWait?: (lockFile: string) => void;
  /** Test seam: runs once the source is open (and, when linking, hashed and checked), before any copy or link. */
  afterOpen?: () => void;
}

/** `replaced`: the sha256 the manifest had for this name before, when it named other bytes. */
export interface AddedModel { id: string; file: string; sha256: string; replaced?: string }

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export async function addModel(o: AddModelOptions): Promise<AddedModel> {
  const id = o.name ?? modelId(o.src);
  if (!ID.test(id)) {
    throw new ModelAddError(`model name '${id}' must start with a letter or digit and use only A-Z a-z 0-9 . _ - (128 at most)${o.name === undefined ? "; give one with --name" : ""}`);
  }
  const name = `${id}.gguf`;
  const srcFd = openSource(o.src, !!o.followSymlinks);
  let made: string | undefined; // the first directory this call created, if any
  try {
    const srcSt = fs.fstatSync(srcFd);
    made = fs.mkdirSync(o.dir, { recursive: true, mode: 0o750 });
    const dest = path.join(o.dir, name);
    const destSt = fs.lstatSync(dest, { throwIfNoEntry: false });
    const owner = ownerFor(o.dir);
    let digest = "";
    let remembered: fs.BigIntStats | undefined;
    let replaced: string | undefined;
    // The manifest is read (and refused if it cannot be) before the file takes the name, under its lock: a failed add
    // had already renamed the new bytes over the served model, leaving the manifest naming the old ones (the next
    // start exited 4; ops run). A manifest that cannot be written puts the old file back.
    const place = (tmp?: string) => withFileLock(manifestPath(o.dir), () => {
      const entries = readManifest(o.dir);
      const write = () => writeManifest(o.dir, [...entries.filter((e) => e.file !== name), { sha256: digest, file: name }]);
      if (tmp) replaceKeepingOld(tmp, dest, write); else write();
      fsyncDir(o.dir);
      replaced = entries.find((e) => e.file === name && e.sha256 !== digest)?.sha256;
    }, { onWait: o.onLockWait });
    if (destSt && destSt.dev === srcSt.dev && destSt.ino === srcSt.ino) {
      digest = await checkAndHash(srcFd, o);
      o.afterOpen?.();
      await o.preflight?.(dest);
      seal(srcFd, owner);
      await place();
    } else if (o.link) {
      digest = await checkAndHash(srcFd, o);
      o.afterOpen?.();
      const tmp = tempName(o.dir, name);
      fs.linkSync(o.followSymlinks ? fs.realpathSync(o.src) : o.src, tmp);
      const linked = fs.lstatSync(tmp);
      if (!linked.isFile() || linked.dev !== srcSt.dev || linked.ino !== srcSt.ino) {
        fs.rmSync(tmp, { force: true });
        throw new ModelAddError(`${o.src} changed while it was being added (the path now names another file): refused`);
      }
      try { await o.preflight?.(tmp); } catch (e) { fs.rmSync(tmp, { force: true }); throw e; }
      seal(srcFd, owner); // the link is the opened inode: mode and owner by that descriptor, never by a path
      try { await place(tmp); } catch (e) { fs.rmSync(tmp, { force: true }); throw e; }
    } else {
      let copied: fs.BigIntStats;
      ({ st: copied } = await copyInto(srcFd, o, tempName(o.dir, name), owner, (d) => { digest = d; }, place));
      remembered = copied;
    }
    // Root's own copy: the next start need not read it again (hash-cache.ts; used only for root-owned files).
    if (remembered) { const cache = HashCache.open(o.dir); cache.remember(dest, remembered, remembered, digest, true); cache.save(); }
    made = undefined;
    return { id, file: dest, sha256: digest, ...(replaced && { replaced }) };
  } finally {
    fs.closeSync(srcFd);
    if (made) removeEmptyDirs(o.dir, made); // refused (not a GGUF, failed its preflight): a mistyped --state-dir is not left behind
  }
}

function openSource(src: string, follow: boolean): number {
  if (!fs.existsSync(src) && !fs.lstatSync(src, { throwIfNoEntry: false })) throw new ModelAddError(`${src} does not exist`); // not a raw ENOENT (ops run)
  try {
    if (!follow) return openPlainFile(src);
    const fd = fs.openSync(src, "r");
    if (!fs.fstatSync(fd).isFile()) { fs.closeSync(fd); throw new ModelAddError(`${src} is not a plain file`); }
    return fd;
  } catch (e) {
    if (e instanceof NotPlainFileError && /symbolic link/.test(e.message)) {
      throw new ModelAddError(`${src} is a symbolic link: give the real file, or pass --follow-symlinks`);
    }
    throw e;
  }
}

/** This process's private copies of model file `name` start so: `removeOwnTemps` finds them by it. */
const tempPrefix = (name: string) => `.${name}.${process.pid}.`;
const tempName = (dir: string, name: string) => path.join(dir, `${tempPrefix(name)}${randomBytes(4).toString("hex")}.tmp`);

/** Removes the private copies or links this process made for model `id` in `dir` (an interrupted add); returns their paths. */
export function removeOwnTemps(dir: string, id: string): string[] {
  const prefix = tempPrefix(`${id}.gguf`);
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  const mine = names.filter((f) => f.startsWith(prefix) && f.endsWith(".tmp")).map((f) => path.join(dir, f));
  for (const f of mine) fs.rmSync(f, { force: true });
  return mine;
}

async function checkAndHash(fd: number, o: AddModelOptions): Promise<string> {
  checkGgufHeader(o.src, fd); // refuse junk before hashing GBs
  return sha256Fd(fd, o.onProgress);
}

/** Read-only for the service: 0440, owned like the models dir when root adds it. */
function seal(fd: number, owner: { uid: number; gid: number } | undefined) {
  if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
  fs.fchmodSync(fd, 0o440);
}

/**
 * `tmp` takes `dest`'s name; `write` (the manifest) runs after. Where it throws, `dest` is what it was: the old file
 * (kept under another name until the manifest is written), or nothing.
 */
function replaceKeepingOld(tmp: string, dest: string, write: () => void) {
  const kept = fs.existsSync(dest) ? `${tmp}.old` : undefined;
  if (kept) fs.linkSync(dest, kept);
  try {
    fs.renameSync(tmp, dest);
    try { write(); } catch (e) {
      if (kept) fs.renameSync(kept, dest); else fs.rmSync(dest, { force: true });
      throw e;
    }
  } finally {
    if (kept) fs.rmSync(kept, { force: true });
  }
}

/**
 * Copies from the source descriptor into a fresh private file, hashing what is written; checks that copy, then has
 * `place` give it its name (and write the manifest).
 */
async function copyInto(srcFd: number, o: AddModelOptions, tmp: string, owner: { uid: number; gid: number } | undefined,
  hashed: (digest: string) => void, place: (tmp: string) => Promise<void>) {
  checkGgufHeader(o.src, srcFd); // refuse junk before copying GBs (the copy is checked again below)
  const c = fs.constants;
  const out = fs.openSync(tmp, c.O_RDWR | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o600);
  try {
    o.afterOpen?.();
    const hash = new Bun.CryptoHasher("sha256");
    const total = fs.fstatSync(srcFd).size;
    const buf = Buffer.allocUnsafe(4 << 20);
    let pos = 0;
    for (;;) {
      const n = await new Promise<number>((res, rej) => fs.read(srcFd, buf, 0, buf.length, pos, (err, b) => (err ? rej(err) : res(b))));
      if (n === 0) break;
      // Every byte, or the error: a short write (a full disk) went unnoticed, and the GGUF check then blamed the source.
      for (let done = 0; done < n;) {
        const w = fs.writeSync(out, buf, done, n - done, pos + done);
        if (w === 0) throw Object.assign(new Error(`${tmp}: no space left to copy the model (wrote ${pos + done} of ${total} bytes)`), { code: "ENOSPC" });
        done += w;
      }
      hash.update(buf.subarray(0, n));
      pos += n;
      o.onProgress?.(pos, total);
    }
    checkGgufHeader(o.src, out); // the bytes that will be served
    fs.fsyncSync(out);
    await o.preflight?.(tmp);
    seal(out, owner);
    hashed(hash.digest("hex"));
    await place(tmp);
    return { st: fs.fstatSync(out, { bigint: true }) }; // after the rename (it moves ctime)
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    fs.closeSync(out);
  }
}
