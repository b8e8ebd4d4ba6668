/** appliance keys create | list | revoke | rotate */
import fs from "node:fs";
import { KEY_NAME, KEY_NAME_RULE, KeyFileError, KeyStore, keysFilePath, SCOPES, type Scope } from "../../guards/keys";
import { parsePublicKey } from "../../guards/signature";
import { shareRevocations } from "../../guards/store/revocations";
import { redisConnFor } from "../../guards/store/shared-state";
import { EXIT, ownConfig, parseOwn, stateDirFlag, UsageError, unknownSubcommand, type Command } from "../command";

/** "30d", "12h", "90m" → ms. */
export function parseDuration(s: string): number {
  const m = /^(\d+)([smhdw])$/.exec(s.trim());
  if (!m) throw new UsageError(`invalid duration '${s}' (use e.g. 30d, 12h, 90m)`);
  return Number(m[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7, w: 6.048e8 }[m[2] as "s"];
}

/**
 * With rateLimit.store "redis" (config file or APPLIANCE_RATE_LIMIT__* variables), the revocation goes to Redis too, so
 * instances with their own copy of the keys file refuse the key within a second. Exit 1 when Redis cannot be told.
 */
async function shareRevoked(store: KeyStore, values: Record<string, unknown>): Promise<number> {
  let config;
  try { config = ownConfig(values); } catch (e) {
    console.error(`appliance: warning: config unreadable (${(e as Error).message}); the revocation was not shared through Redis`);
    return EXIT.FAIL;
  }
  if (config.rateLimit.store !== "redis") return EXIT.OK;
  const silent = { error() {}, warn() {}, info() {} };
  const conn = redisConnFor(config, silent);
  const failed = await shareRevocations(conn, config.rateLimit.redisPrefix, store.list().filter((r) => r.revoked).map((r) => r.id));
  if (failed) {
    console.error(`appliance: the keys file says revoked, but Redis could not be told (${await conn.explain(failed)}); instances with their own ` +
      "copy of the keys file still accept the key until one sharing this file serves a request with Redis back");
    return EXIT.FAIL;
  }
  console.error("shared through Redis: every instance refuses it within 1 s");
  return EXIT.OK;
}

/** The signing public key file (PEM from `openssl pkey -pubout`); its contents are checked by the key store. */
function readPublicKey(file: string): string {
  let text: string;
  try { text = fs.readFileSync(file, "utf8"); } catch (e) {
    throw new UsageError(`cannot read --public-key ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // A file that is no Ed25519 public key is a mistyped argument, as an unreadable one is (exit 2, not 1: ops run).
  try { parsePublicKey(text); } catch (e) { throw new UsageError(`--public-key ${file}: ${(e as Error).message}`); }
  return text;
}

const intFlag = (v: unknown, name: string) => {
  if (v === undefined) return undefined;
  // Number("") is 0, which is "no limit": `--rpm "$RPM"` with RPM unset made an unlimited key.
  const n = /^\s*\d+\s*$/.test(String(v)) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} must be a whole number >= 0 (0: no limit), got '${v}'`);
  return n;
};

/**
 * The keys file is not there (ENOENT only): one this user cannot reach (EACCES: the service's 0700 state dir) is not
 * "no key was ever created"; the store's own read says permission denied.
 */
function noKeysFile(file: string): boolean {
  try { fs.statSync(file); return false; } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return true;
    // The store would read any other failure as no file (no keys listed, exit 0): say what it is.
    throw new KeyFileError(`cannot read ${file}: ${code === "EACCES" ? "permission denied (run as root or the service account)" : code ?? (e as Error).message}`);
  }
}

/** A duration flag that must lie ahead: 0 would make a key born expired, a huge one an Invalid Date. */
function futureMs(v: string, name: string): number {
  const ms = parseDuration(v);
  if (ms <= 0 || !Number.isFinite(new Date(Date.now() + ms).getTime())) throw new UsageError(`--${name} must be more than 0 and a date the calendar has (e.g. 30d, 52w), got '${v}'`);
  return ms;
}

/** Each subcommand's own flags (beside --state-dir and --config): another subcommand's flag is a usage error, not ignored. */
const STRING = { type: "string" } as const, BOOL = { type: "boolean" } as const;
const KEYS_FLAGS = {
  create: { name: STRING, scopes: STRING, scope: { type: "string", multiple: true }, expires: STRING, rpm: STRING, tpm: STRING,
    "max-concurrent": STRING, "require-signature": BOOL, "public-key": STRING },
  list: { json: BOOL },
  revoke: { name: STRING, all: BOOL },
  rotate: { name: STRING, grace: STRING, "public-key": STRING },
} as const;
const KEYS_SUBS = Object.keys(KEYS_FLAGS);

export const keys: Command = {
  name: "keys",
  summary: "Create, list, revoke and rotate API keys",
  usage: "appliance keys create --name NAME [--scopes chat,completions,embeddings,models,metrics,admin | --scope S]... [--expires 30d] [--rpm N] [--tpm N] " +
    "[--max-concurrent N] [--require-signature --public-key FILE] | list [--json] | revoke NAME...|--all | rotate NAME [--grace 1h] [--public-key FILE]" +
    "   (all take --state-dir DIR or --config FILE)",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (!KEYS_SUBS.includes(sub!)) throw unknownSubcommand("keys", sub, KEYS_SUBS);
    const { values, positionals } = parseOwn(rest, { "state-dir": STRING, config: STRING, ...KEYS_FLAGS[sub as keyof typeof KEYS_FLAGS] },
      sub === "revoke" || sub === "rotate", ["name"]);
    if (sub === "rotate" && positionals.length > 1) throw new UsageError(`keys rotate takes one NAME, got ${positionals.length}: ${positionals.join(" ")}`);
    const stateDir = stateDirFlag(values);
    if (sub !== "create" && noKeysFile(keysFilePath(stateDir))) {
      // Nothing is created for a state dir that has no keys (a mistyped --state-dir made the dir and a lock file).
      console.error(`no keys file at ${keysFilePath(stateDir)}: no key was ever created for this state dir`);
      if (sub === "list" && values.json) console.log("[]"); // what a keys file with no keys lists: scripts parse it
      return sub === "list" ? EXIT.OK : EXIT.FAIL;
    }
    const store = new KeyStore(keysFilePath(stateDir), Date.now, undefined, {
      onLockWait: (lock) => console.error(`waiting for ${lock}: another keys command is changing the keys file`),
    });
    const publicKey = values["public-key"] === undefined ? undefined : readPublicKey(String(values["public-key"]));
    switch (sub) {
      case "create": {
        if (!values.name) throw new UsageError("keys create needs --name NAME");
        if (!KEY_NAME.test(String(values.name))) throw new UsageError(`${KEY_NAME_RULE}, got '${values.name}'`);
        // --scopes a,b and/or --scope a --scope b (e.g. `--scope metrics` for a scraper's key)
        const given = [values.scopes, ...((values.scope as string[] | undefined) ?? [])].filter((v) => v !== undefined).map(String);
        // An empty value is not "no flag": `--scope "$SCOPES"` with SCOPES unset made a key with the default inference
        // scopes where a metrics-only key was meant (ops run).
        if (given.some((g) => !g.trim())) throw new UsageError(`--scopes/--scope given empty: name at least one scope (known: ${SCOPES.join(", ")}), or leave the flag out for the default`);
        const scopes = given.length ? given.join(",").split(",").map((s) => s.trim()) : undefined;
        for (const s of scopes ?? []) if (!SCOPES.includes(s as Scope)) throw new UsageError(`unknown scope '${s}' (known: ${SCOPES.join(", ")})`);
        if (publicKey && !values["require-signature"]) throw new UsageError("--public-key is for a key that signs its requests: add --require-signature");
        if (values["require-signature"] && !publicKey) throw new UsageError("--require-signature needs --public-key FILE (an Ed25519 public key, e.g. from openssl pkey -pubout)");
        const { key, record } = store.create({
          name: String(values.name), scopes: scopes as Scope[] | undefined,
          expiresAt: values.expires !== undefined ? new Date(Date.now() + futureMs(String(values.expires), "expires")) : null,
          rpm: intFlag(values.rpm, "rpm"), tpm: intFlag(values.tpm, "tpm"), maxConcurrent: intFlag(values["max-concurrent"], "max-concurrent"),
          requireSignature: !!values["require-signature"], publicKey,
        });
        console.error(`created key '${record.name}' (scopes ${record.scopes.join(",")}${record.expires ? `, expires ${record.expires}` : ""}). ` +
          "It is shown once and stored only as a hash:");
        console.log(key);
        return EXIT.OK;
      }
      case "list": {
        // A rotated key's old secret still valid (--grace) is shown by its end, never its hash.
        const list = store.list().map(({ hash: _h, previous: p, ...r }) => ({ ...r,
          ...(p && !r.revoked && Date.parse(p.validUntil) > Date.now() && { previousValidUntil: p.validUntil }) }));
        if (values.json) console.log(JSON.stringify(list, null, 2));
        else for (const r of list) {
          const state = r.revoked ? "revoked" : r.expires && Date.parse(r.expires) < Date.now() ? "expired" : "active";
          console.log(`${r.name.padEnd(20)} ${state.padEnd(8)} ${r.scopes.join(",").padEnd(36)} created ${r.created}${r.expires ? ` expires ${r.expires}` : ""}${r.requireSignature ? " signed" : ""}` +
            (r.previousValidUntil ? ` old secret valid until ${r.previousValidUntil}` : ""));
        }
        return EXIT.OK;
      }
      case "revoke": {
        if (values.all) {
          if (positionals.length || values.name) throw new UsageError("keys revoke --all takes no NAME");
          const names = store.revokeAll();
          console.log(names.length ? `revoked ${names.length} key(s): ${names.join(", ")}` : "no active keys to revoke");
          return shareRevoked(store, values);
        }
        const names = [...positionals, ...(values.name !== undefined ? [String(values.name)] : [])];
        if (!names.length) throw new UsageError("keys revoke NAME... | --all");
        // Several names: all revoked in one write, or none (one is unknown): never some left live by surprise.
        const revoked = store.revoke(...new Set(names));
        console.log(`revoked ${revoked.map((r) => r.name).join(", ")}`);
        return shareRevoked(store, values);
      }
      case "rotate": {
        const name = positionals[0] ?? (values.name as string | undefined);
        if (!name) throw new UsageError("keys rotate NAME");
        const grace = values.grace !== undefined ? futureMs(String(values.grace), "grace") : 0;
        const { key } = store.rotate(name, grace, publicKey);
        console.error(`rotated ${name}; the old key ${grace ? `stays valid for ${values.grace}` : "is invalid now"}. New key (shown once):`);
        console.log(key);
        return EXIT.OK;
      }
    }
    throw unknownSubcommand("keys", sub, KEYS_SUBS);
  },
};
