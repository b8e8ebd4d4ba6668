/**
 * The PEM files the config names (the listener's --tls-cert/--tls-key/--tls-client-ca, an upstream's tlsCa, tlsCert
 * and tlsKey), read and checked by one set of rules: each mistake is a ConfigError naming the setting (exit 2) at
 * start, never a server that listens and then fails every handshake.
 */
import type { X509Certificate } from "node:crypto";
import fs from "node:fs";
import { nodeCrypto } from "../util/node-builtins";
import { ConfigError } from "./load";

/** Where a file was named: `setting` (the ConfigError's path, e.g. "upstreams") and, inside it, the field ("tlsCa"). */
export interface PemSource { setting: string; field: string }

const said = (s: PemSource) => (s.setting === s.field ? s.field : `${s.setting}: ${s.field}`);

/** The file's text; a file that cannot be read names the setting and the reason (ENOENT, EACCES …). */
export function readPemFile(file: string, s: PemSource): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`invalid config: ${said(s)}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, s.setting);
  }
}

/** Every PEM certificate in `pem` (the text of `file`), parsed; none, or one that does not parse, names the setting. */
export function pemCertificates(pem: string, file: string, s: PemSource): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(`invalid config: ${said(s)}: ${file} holds no PEM certificate`, s.setting);
  try {
    return blocks.map((b) => new (nodeCrypto().X509Certificate)(b));
  } catch (e) {
    throw new ConfigError(`invalid config: ${said(s)}: ${file} holds a certificate that does not parse: ${(e as Error).message}`, s.setting);
  }
}

/**
 * Whether a private key's mode lets every user of the machine read it. Like ssh with a private key, such a key is
 * refused; group-readable stays allowed (a key shared through a group such as Debian's ssl-cert). serve refuses it
 * (refuseKeyReadableByAll) and verify fails it, by this one rule.
 */
export const readableByAll = (mode: number) => (mode & 0o004) !== 0;

/** Refuses a private key file every user may read (readableByAll), naming the setting and the fix. */
export function refuseKeyReadableByAll(file: string, s: PemSource) {
  const mode = fs.statSync(file).mode & 0o777;
  if (readableByAll(mode)) throw new ConfigError(`invalid config: ${said(s)}: ${file} is readable by every user (mode ${mode.toString(8)}); run: chmod o-r ${file}`, s.setting);
}
