#!/usr/bin/env bun
/**
 * bun run release --key RELEASE.key [--out DIR] [--target T]... [--check-reproducible]
 *
 * Builds every target this machine can build, each embedding the release public key (so
 * `appliance update --signature` needs no --pubkey), writes a CycloneDX SBOM of the shipped
 * (non-dev) npm dependency tree, SHA256SUMS over every artefact, and SHA256SUMS.sig: the raw Ed25519
 * signature over SHA256SUMS (what `openssl pkeyutl -sign -rawin` makes). Nothing is downloaded:
 * the SBOM comes from the installed tree with npm forced offline, and targets that would need a
 * download (cross-compiling fetches another Bun runtime) are skipped, with the reason printed.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { publicKeyOf, signedDigest, signSums } from "../src/release/signature";
import { sha256File } from "../src/util/sha256";
import { TARGETS } from "./build";

type Target = keyof typeof TARGETS;
const root = path.resolve(import.meta.dir, "..");
export const SBOM_FILE = "appliance.cdx.json";
export const PUBKEY_FILE = "release-key.pub";

/** Why this machine cannot build a target, or undefined when it can. */
export function cannotBuild(target: Target): string | undefined {
  const t = TARGETS[target];
  const host = `bun-${process.platform}-${process.arch}`;
  if (t.bun !== host) return `cross-compiling to ${t.bun} needs Bun to download that runtime, and a release downloads nothing (build it on a ${t.bun.slice(4)} machine)`;
  const missing = t.packages.filter((p) => !fs.existsSync(path.join(root, "node_modules", p)));
  if (missing.length) return `${missing.join(", ")} not installed (npm installs only this platform's prebuilt llama.cpp packages)`;
  return undefined;
}

const binaryName = (target: Target) => `appliance-${target}`;

/**
 * npm forced offline; and none of the npm_* variables `bun run` sets: cyclonedx-npm would take
 * npm_execpath (bun) for npm and refuse it, so it finds npm on PATH instead.
 */
function sbomEnv(): Record<string, string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && !/^npm_/i.test(k))) as Record<string, string>;
  return { ...env, npm_config_offline: "true" };
}

async function sbom(out: string) {
  const bin = path.join(root, "node_modules", ".bin", "cyclonedx-npm");
  const p = Bun.spawn([bin, "--omit", "dev", "--output-reproducible", "--output-format", "JSON", "--output-file", out, path.join(root, "package.json")],
    { cwd: root, stdout: "pipe", stderr: "pipe", env: sbomEnv() });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`cyclonedx-npm exited ${code}: ${err.trim().slice(-500)}`);
}

const git = (args: string[], cwd = root) => {
  const r = Bun.spawnSync(["git", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`git ${args.join(" ")} failed: ${r.stderr.toString().trim()}`);
  return r.stdout.toString().trim();
};

/**
 * A checkout of one commit in a temp dir (a shared local clone: nothing is fetched), with the
 * installed node_modules linked in. Releases are built from the commit, never from a working tree
 * that may hold uncommitted edits, and two such checkouts at different paths give the same bytes.
 */
function checkout(commit: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-release-src-"));
  git(["clone", "--quiet", "--shared", "--no-checkout", root, dir]);
  git(["-c", "advice.detachedHead=false", "checkout", "--quiet", commit], dir);
  fs.symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

/** Runs scripts/build.ts of a checkout in its own process (the env carries the release public key). */
async function buildIn(src: string, target: Target, out: string, publicPem: string, order: Record<string, string>) {
  const p = Bun.spawn([process.execPath, path.join(src, "scripts", "build.ts"), "--target", target, "--out", out],
    { cwd: src, stdout: "pipe", stderr: "pipe", env: { ...order, ...process.env, APPLIANCE_RELEASE_PUBKEY: publicPem } });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`building ${target} failed (${code}): ${err.trim().slice(-500)}`);
}

export interface ReleaseResult { commit: string; built: string[]; files: string[]; reproducible?: { same: boolean; a: string; b: string } }

export async function release(opts: { key: string; out: string; targets?: Target[]; checkReproducible?: boolean; say?: (s: string) => void }): Promise<ReleaseResult> {
  const say = opts.say ?? console.log;
  const privatePem = fs.readFileSync(opts.key, "utf8");
  const publicPem = publicKeyOf(privatePem); // every binary of this release trusts this key for updates
  const commit = git(["rev-parse", "HEAD"]);
  if (git(["status", "--porcelain", "--untracked-files=no"])) say(`note: the working tree has uncommitted changes; the release is built from commit ${commit} only`);
  fs.mkdirSync(opts.out, { recursive: true });
  const wanted = opts.targets ?? (Object.keys(TARGETS) as Target[]);
  const built: string[] = [];
  const srcA = checkout(commit);
  const srcB = opts.checkReproducible ? checkout(commit) : undefined;
  // One bytecode layout for every binary of the release (scripts/bytecode-order.ts): the first build records it, the
  // others, the reproducibility check's too, use it (two recording runs use a few different functions).
  const orderDir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-release-order-"));
  const orderFile = path.join(orderDir, "serve.order");
  let order: Record<string, string> = { APPLIANCE_BYTECODE_ORDER_FILE: orderFile };
  let reproducible: ReleaseResult["reproducible"];
  try {
    for (const target of wanted) {
      const why = cannotBuild(target);
      if (why) { say(`skipped ${target}: ${why}`); continue; }
      const file = path.join(opts.out, binaryName(target));
      await buildIn(srcA, target, file, publicPem, order);
      // No recording (it could not run): none for the others either, so all are laid out alike.
      if (!fs.existsSync(orderFile)) order = { APPLIANCE_BYTECODE_ORDER: "0" };
      built.push(binaryName(target));
      say(`built ${binaryName(target)} from ${commit.slice(0, 12)}`);
    }
    if (built.length === 0) throw new Error("no target could be built on this machine");
    if (srcB) {
      // The same commit, checked out at another path and built again: the file name is kept (Bun embeds it).
      const target = wanted.find((t) => built.includes(binaryName(t)))!;
      const again = path.join(srcB, "out", binaryName(target));
      await buildIn(srcB, target, again, publicPem, order);
      const [a, b] = [await sha256File(path.join(opts.out, binaryName(target))), await sha256File(again)];
      reproducible = { same: a === b, a, b };
      say(a === b ? `reproducible: ${target} built again in another checkout of ${commit.slice(0, 12)} has the same sha256 ${a}`
        : `NOT reproducible: ${target} built twice from ${commit.slice(0, 12)} gave ${a} and ${b}`);
    }
  } finally {
    for (const dir of [srcA, srcB, orderDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
  await sbom(path.join(opts.out, SBOM_FILE));
  fs.writeFileSync(path.join(opts.out, PUBKEY_FILE), publicPem);
  const files = [...built, SBOM_FILE, PUBKEY_FILE].sort();
  const sums = (await Promise.all(files.map(async (f) => `${await sha256File(path.join(opts.out, f))}  ${f}\n`))).join("");
  fs.writeFileSync(path.join(opts.out, "SHA256SUMS"), sums);
  fs.writeFileSync(path.join(opts.out, "SHA256SUMS.sig"), signSums(Buffer.from(sums), privatePem));
  // Check what was written the way `update --signature` will, so a broken release never leaves here.
  signedDigest({ binary: built[0]!, sumsFile: path.join(opts.out, "SHA256SUMS"), signatureFile: path.join(opts.out, "SHA256SUMS.sig"), publicKeyPem: publicPem, keySource: PUBKEY_FILE });
  say(`wrote SHA256SUMS (${files.length} files), SHA256SUMS.sig, ${SBOM_FILE}, ${PUBKEY_FILE} in ${opts.out}`);
  return { commit, built, files, reproducible };
}

if (import.meta.main) {
  const usage = "usage: bun run release --key RELEASE.key [--out DIR] [--target T]... [--check-reproducible]";
  let values;
  try {
    ({ values } = parseArgs({ args: Bun.argv.slice(2), options: {
      key: { type: "string" }, out: { type: "string" }, target: { type: "string", multiple: true }, "check-reproducible": { type: "boolean" },
    } }));
  } catch (e) { console.error(`release: ${(e as Error).message}\n${usage}`); process.exit(2); }
  const key = values.key ?? process.env.APPLIANCE_RELEASE_SIGNING_KEY;
  if (!key) {
    console.error(`release: no signing key: --key FILE or APPLIANCE_RELEASE_SIGNING_KEY (make one: openssl genpkey -algorithm ed25519 -out release.key)\n${usage}`);
    process.exit(2);
  }
  const unknown = (values.target ?? []).filter((t) => !(t in TARGETS));
  if (unknown.length) { console.error(`release: unknown --target ${unknown.join(", ")} (known: ${Object.keys(TARGETS).join(", ")})`); process.exit(2); }
  await release({ key, out: path.resolve(values.out ?? path.join(root, "dist", "release")), targets: values.target as Target[] | undefined, checkReproducible: values["check-reproducible"] })
    .catch((e: Error) => { console.error(`release: ${e.message}`); process.exit(1); });
}
