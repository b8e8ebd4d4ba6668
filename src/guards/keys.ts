/**
 * The API key store: a JSON file (mode 0600) holding only sha256 digests of the
 * keys, never the keys. Keys look like apk_<id>_<secret> with 256 random bits
 * of secret; the id finds the record, the digest is compared in constant time.
 * The file is re-read whenever it changes, so revocations need no restart.
 * Every change is a read-modify-write under an exclusive lock (keys.json.lock)
 * with an atomic, fsynced replace, so concurrent CLI runs never lose a change.
 * The file is opened without following symlinks and its mode is checked on
 * that same descriptor.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "../util/zod-mini";
import { writeFileAtomic } from "../util/atomic-write";
import { withFileLockSync } from "../util/file-lock";
import { openPlainFile, readFd } from "../util/fs";
import { randomBytes } from "../util/random";
import { sha256Bytes } from "../util/sha256";
import { parsePublicKey } from "./signature";

export const SCOPES = ["chat", "completions", "embeddings", "models", "metrics", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

const count = () => z.nullable(z.number().check(z.int(), z.gte(0)));
const keyRecord = z.object({
  id: z.string(),
  name: z.string(),
  /** hex sha256 of the whole key string. */
  hash: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
  scopes: z.array(z.enum(SCOPES)),
  created: z.string(),
  expires: z.nullable(z.string()),
  revoked: z.nullable(z.string()),
  rpm: count(),
  tpm: count(),
  maxConcurrent: count(),
  requireSignature: z.boolean(),
  /** The key holder's Ed25519 public key (base64 of the 32 raw bytes) that signs its requests; nothing secret. */
  signingKey: z._default(z.nullable(z.string().check(z.regex(/^[A-Za-z0-9+/]{43}=$/))), null),
  /** After a rotation the old digest stays valid until this time. */
  previous: z.nullable(z.object({ hash: z.string(), validUntil: z.string() })),
});
export type KeyRecord = z.output<typeof keyRecord>;
const keyFile = z.object({ version: z.literal(1), keys: z.array(keyRecord) });

export class KeyFileError extends Error {}

/** What a key's name may be (the CLI refuses others as a usage error before the store is touched). */
export const KEY_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const KEY_NAME_RULE = "key name must be 1-64 of A-Z a-z 0-9 _ . -";

const sha256 = sha256Bytes;
const KEY_SHAPE = /^apk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function keysFilePath(stateDir: string) { return path.join(stateDir, "keys.json"); }

/** Refuses a keys file that others can read: it is the server's whole access list. */
export function checkKeysFileMode(file: string, st: fs.Stats = fs.statSync(file)) {
  if ((st.mode & 0o077) !== 0) {
    throw new KeyFileError(`${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
  }
}

export interface NewKeyOptions {
  name: string;
  scopes?: Scope[];
  expiresAt?: Date | null;
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrent?: number | null;
  requireSignature?: boolean;
  /** Ed25519 public key (PEM or base64 of the raw 32 bytes) that signs this key's requests; needs requireSignature. */
  publicKey?: string;
}

/** Test seams: what runs between the locked read and the write, and what a writer does while it waits for the lock. */
export interface KeyStoreHooks {
  beforeWrite?: () => void;
  onLockWait?: (lockFile: string) => void;
}

export class KeyStore {
  private records: KeyRecord[] = [];
  private stamp = "";

  /** The last reload problem, if the file is currently unusable (then no key is accepted: fail closed). */
  private problem: string | undefined;

  /** Moves whenever the records were (re)read, so callers can tell a changed file cheaply (shared revocations). */
  generation = 0;

  constructor(readonly file: string, private readonly now: () => number = Date.now,
    private readonly warn: (message: string) => void = () => {}, private readonly hooks: KeyStoreHooks = {}) {
    this.load(true);
  }

  /** Re-reads the file if it changed. A broken or exposed file while running denies every key until fixed. */
  reload(force = false) {
    try {
      this.load(force);
      this.problem = undefined;
    } catch (e) {
      if (this.problem !== (e as Error).message) this.warn(`keys file unusable, refusing every key until fixed: ${(e as Error).message}`);
      this.problem = (e as Error).message;
      this.records = [];
      this.stamp = "broken";
    }
  }

  /**
   * Reads the file if it changed (a cheap lstat per call); throws if it is a symlink, exposed or malformed.
   * The stamp includes ctime, mode and owner, so a chmod or chown alone is noticed too.
   */
  private load(force: boolean) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(this.file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Only a file that is not there means "no keys yet"; one this user may not look at is unusable (EACCES was
      // read as missing: every key got 401 and nothing was logged).
      if (code !== "ENOENT") throw new KeyFileError(`cannot read ${this.file}: ${code ?? (e as Error).message}`);
      // Removed while serving: every key is refused from now on, which the log must say (it said nothing).
      if (this.stamp !== "" && this.stamp !== "missing") {
        this.warn(`keys file ${this.file} is gone: every key is refused until it is back (restore it, or appliance keys create writes a new one)`);
      }
      this.records = [];
      this.stamp = "missing";
      return;
    }
    const stamp = `${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}:${st.mode}:${st.uid}`;
    if (!force && stamp === this.stamp) return;
    let fd: number;
    try { fd = openPlainFile(this.file); } catch (e) { throw new KeyFileError((e as Error).message); }
    let text: string;
    try {
      checkKeysFileMode(this.file, fs.fstatSync(fd)); // the mode of the very file we read, not of the path a moment ago
      text = readFd(fd).toString("utf8");
    } finally { fs.closeSync(fd); }
    let json: unknown;
    try { json = JSON.parse(text); } catch (e) { throw new KeyFileError(`${this.file} is not valid JSON: ${(e as Error).message}`); }
    // jitless: read at start and when the file changes; generating zod's compiled parser costs more than it saves (config/load.ts)
    const parsed = keyFile.safeParse(json, { jitless: true });
    if (!parsed.success) {
      // Where, not only what: `{}` said "Invalid input: expected 1" (ops run).
      const issue = parsed.error.issues[0];
      const at = issue?.path.length ? ` at ${issue.path.join(".")}` : "";
      throw new KeyFileError(`${this.file} is not a valid keys file${at}: ${issue?.message}`);
    }
    this.records = parsed.data.keys;
    this.stamp = stamp;
    this.generation++;
  }

  list(): readonly KeyRecord[] { this.reload(); return this.records; }

  /** The record a presented key belongs to, or undefined (unknown, wrong, revoked or expired). */
  verify(presented: string): KeyRecord | undefined {
    this.reload();
    const m = KEY_SHAPE.exec(presented);
    if (!m) return undefined;
    const rec = this.records.find((r) => r.id === m[1]);
    if (!rec || rec.revoked) return undefined;
    const now = this.now();
    if (rec.expires && Date.parse(rec.expires) <= now) return undefined;
    const digest = Buffer.from(sha256(presented), "hex");
    const ok = crypto.timingSafeEqual(digest, Buffer.from(rec.hash, "hex"));
    const okPrev = rec.previous != null && Date.parse(rec.previous.validUntil) > now
      && crypto.timingSafeEqual(digest, Buffer.from(rec.previous.hash, "hex"));
    return ok || okPrev ? { ...rec, hash: ok ? rec.hash : rec.previous!.hash } : undefined;
  }

  /** Creates a key; returns the only copy of it. */
  create(opts: NewKeyOptions): { key: string; record: KeyRecord } {
    if (!KEY_NAME.test(opts.name)) throw new KeyFileError(KEY_NAME_RULE);
    if (opts.publicKey && !opts.requireSignature) throw new KeyFileError("a signing public key needs --require-signature");
    if (opts.requireSignature && !opts.publicKey) {
      throw new KeyFileError("--require-signature needs --public-key FILE: the Ed25519 public key whose private half signs the requests");
    }
    const signingKey = opts.publicKey ? parsePublicKey(opts.publicKey) : null;
    return this.change((records) => {
      if (records.some((r) => r.name === opts.name && !r.revoked)) throw new KeyFileError(`a key named ${opts.name} exists already`);
      const { key, id } = newKey();
      const record: KeyRecord = {
        id, name: opts.name, hash: sha256(key), scopes: opts.scopes ?? ["chat", "completions", "embeddings", "models"],
        created: new Date(this.now()).toISOString(), expires: opts.expiresAt ? opts.expiresAt.toISOString() : null, revoked: null,
        rpm: opts.rpm ?? null, tpm: opts.tpm ?? null, maxConcurrent: opts.maxConcurrent ?? null,
        requireSignature: opts.requireSignature ?? false, signingKey, previous: null,
      };
      return { records: [...records, record], result: { key, record } };
    });
  }

  /** Revokes the named keys in one locked write: all of them, or (one name unknown) none. */
  revoke(...names: string[]): KeyRecord[] {
    return this.change((records) => {
      const missing = names.filter((n) => !records.some((r) => r.name === n && !r.revoked));
      if (missing.length) throw new KeyFileError(`no active key named ${missing.join(", ")}${names.length > 1 ? " (nothing revoked)" : ""}`);
      const at = new Date(this.now()).toISOString();
      const updated = records.map((r) => (names.includes(r.name) && !r.revoked ? { ...r, revoked: at } : r));
      return { records: updated, result: updated.filter((r) => r.revoked === at && names.includes(r.name)) };
    });
  }

  /** Containment: revokes every key not revoked yet, in one locked write; returns the names revoked. */
  revokeAll(): string[] {
    return this.change((records) => {
      const at = new Date(this.now()).toISOString();
      const names = records.filter((r) => !r.revoked).map((r) => r.name);
      return { records: records.map((r) => (r.revoked ? r : { ...r, revoked: at })), result: names };
    });
  }

  /** New secret for the same record; the old one stays valid for graceMs. A new signing public key may come with it. */
  rotate(name: string, graceMs = 0, publicKey?: string): { key: string; record: KeyRecord } {
    const signingKey = publicKey ? parsePublicKey(publicKey) : undefined;
    return this.change((records) => {
      const rec = byName(records, name);
      if (signingKey && !rec.requireSignature) throw new KeyFileError(`${name} does not require signatures; --public-key does not apply`);
      const { key } = newKey(rec.id);
      const updated: KeyRecord = {
        ...rec, hash: sha256(key), signingKey: signingKey ?? rec.signingKey,
        previous: graceMs > 0 ? { hash: rec.hash, validUntil: new Date(this.now() + graceMs).toISOString() } : null,
      };
      return { records: records.map((r) => (r === rec ? updated : r)), result: { key, record: updated } };
    });
  }

  /**
   * One read-modify-write under the file lock: read the current file (never a cached copy), apply the
   * change, replace atomically (created 0600 from the start, owned like its directory when root writes).
   */
  private change<T>(apply: (records: KeyRecord[]) => { records: KeyRecord[]; result: T }): T {
    return withFileLockSync(this.file, () => {
      this.load(true); // never rewrite a file we could not read
      const { records, result } = apply(this.records);
      this.hooks.beforeWrite?.();
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      writeFileAtomic(this.file, JSON.stringify({ version: 1, keys: records }, null, 2) + "\n", { mode: 0o600 });
      this.load(true);
      return result;
    }, { onWait: this.hooks.onLockWait });
  }
}

function byName(records: KeyRecord[], name: string): KeyRecord {
  const rec = records.find((r) => r.name === name && !r.revoked);
  if (!rec) throw new KeyFileError(`no active key named ${name}`);
  return rec;
}

function newKey(id = randomBytes(8).toString("hex")) {
  return { id, key: `apk_${id}_${randomBytes(32).toString("base64url")}` };
}
