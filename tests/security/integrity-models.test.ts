/**
 * `models add` run as root on a source in a user-writable directory (issue 10, items 5 and 9): the
 * source is opened once and never re-resolved, so re-pointing it mid-add can neither copy nor hand
 * over another file; modes and owners are set by descriptor; `.` and `..` are not model names.
 */
import { afterAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { addModel, ModelAddError } from "../../src/integrity/add-model";
import { readManifest } from "../../src/integrity/manifest";
import { main } from "../../src/main";
import { sha256File } from "../../src/util/sha256";
import { tinyModel, tmpDir } from "../helpers";

const dirs: string[] = [];
const dir = (p = "appliance-models-") => { const d = tmpDir(p); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
const asRoot = process.getuid?.() === 0;
const SERVICE = 65534; // stands in for the service account: owner of the models dir

/** A user-writable drop dir holding a model and a symlink to it, and a root-only secret elsewhere. */
async function scene() {
  const drop = dir("appliance-drop-");
  const model = path.join(drop, "real.gguf");
  fs.copyFileSync(await tinyModel(), model);
  const link = path.join(drop, "model.gguf");
  fs.symlinkSync(model, link);
  const secret = path.join(dir("appliance-secret-"), "shadow");
  fs.writeFileSync(secret, "root:$6$secret-hash:19000:0:99999:7:::\n", { mode: 0o600 });
  const models = dir();
  if (asRoot) fs.chownSync(models, SERVICE, SERVICE);
  const repoint = () => { fs.rmSync(link); fs.symlinkSync(secret, link); };
  return { drop, model, link, secret, models, repoint, secretStat: () => fs.statSync(secret) };
}

test("a symlinked source is refused unless --follow-symlinks is given", async () => {
  const s = await scene();
  expect(await main(["models", "add", s.link, "--models-dir", s.models])).toBe(1);
  await expect(addModel({ src: s.link, dir: s.models })).rejects.toThrow(/symbolic link.*--follow-symlinks/);
  const added = await addModel({ src: s.link, dir: s.models, followSymlinks: true });
  expect(added.sha256).toBe(await sha256File(s.model));
});

test("copy mode: re-pointing the symlink after it was opened copies the opened model, never the new target", async () => {
  const s = await scene();
  const want = await sha256File(s.model);
  const added = await addModel({ src: s.link, dir: s.models, name: "m", followSymlinks: true, afterOpen: s.repoint });
  expect(fs.realpathSync(s.link)).toBe(s.secret); // the swap really happened
  expect(added.sha256).toBe(want);
  expect(await sha256File(added.file)).toBe(want);
  expect(fs.readFileSync(added.file, "latin1")).not.toContain("secret-hash");
  expect(readManifest(s.models)).toEqual([{ sha256: want, file: "m.gguf" }]);
  const st = fs.statSync(added.file);
  expect(st.mode & 0o777).toBe(0o440);
  if (asRoot) expect([st.uid, st.gid]).toEqual([SERVICE, SERVICE]);
  expect(s.secretStat()).toMatchObject({ uid: 0, mode: expect.any(Number) });
  expect(s.secretStat().mode & 0o777).toBe(0o600);
});

test("link mode: a source re-pointed after it was opened is refused, and the root-only file is not handed over", async () => {
  for (const follow of [true, false]) {
    const s = await scene();
    // Without --follow-symlinks the source must be the plain file; the attacker then swaps that path for a symlink.
    const src = follow ? s.link : s.model;
    const swap = follow ? s.repoint : () => { fs.rmSync(s.model); fs.symlinkSync(s.secret, s.model); };
    const before = s.secretStat();
    await expect(addModel({ src, dir: s.models, name: "m", link: true, followSymlinks: follow, afterOpen: swap }))
      .rejects.toThrow(ModelAddError);
    const after = s.secretStat();
    expect([after.uid, after.gid, after.mode, after.nlink]).toEqual([before.uid, before.gid, before.mode, before.nlink]);
    expect(fs.readdirSync(s.models).filter((f) => f.endsWith(".gguf") || f.endsWith(".tmp"))).toEqual([]);
    expect(readManifest(s.models)).toEqual([]);
  }
});

test("link mode without interference links the opened inode, 0440, owned like the models dir", async () => {
  const s = await scene();
  const added = await addModel({ src: s.model, dir: s.models, name: "m", link: true });
  const st = fs.statSync(added.file);
  expect(st.ino).toBe(fs.statSync(s.model).ino);
  expect(st.mode & 0o777).toBe(0o440);
  if (asRoot) expect(st.uid).toBe(SERVICE);
});

test("--name . and --name .. are refused (exit 2); so is a name that starts with a dot", async () => {
  const models = dir();
  for (const name of [".", "..", ".hidden", "a/b", ""]) {
    expect({ name, code: await main(["models", "add", await tinyModel(), "--name", name, "--models-dir", models]) }).toEqual({ name, code: 2 });
  }
  expect(readManifest(models)).toEqual([]);
});
