/**
 * TLS and mTLS for the listener: reads and checks --tls-cert, --tls-key and --tls-client-ca
 * once at start and turns them into Bun.serve's `tls` options. Every mistake is a ConfigError
 * naming the setting (exit 2), so a wrong path or a key that does not match the certificate
 * never turns into a server that listens and then fails every handshake.
 */
import type { KeyObject, X509Certificate } from "node:crypto";
import { ConfigError } from "../config/load";
import { pemCertificates, readPemFile, refuseKeyReadableByAll } from "../config/pem-files";
import type { Config } from "../config/schema";
import { nodeCrypto } from "../util/node-builtins";

/**
 * Protocol versions below TLS 1.2 are switched off. Bun.serve has no minVersion option; its
 * `secureOptions` is the OpenSSL/BoringSSL SSL_OP_* bitmask, so the old versions are masked out.
 */
function noOldProtocols() {
  const { constants: c } = nodeCrypto();
  return c.SSL_OP_NO_SSLv2 | c.SSL_OP_NO_SSLv3 | c.SSL_OP_NO_TLSv1 | c.SSL_OP_NO_TLSv1_1;
}

/** Smallest keys accepted (NIST SP 800-57: RSA below 2048 bits is no longer acceptable). */
const MIN_RSA_BITS = 2048;
const MIN_EC_BITS = 256;

/** What Bun.serve takes as `tls` (a subset of Bun's TLSOptions, kept here so the server layer has one type). */
export interface ServerTls {
  cert: string;
  key: string;
  ca?: string;
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
  secureOptions: number;
}

type TlsSettings = Pick<Config, "tlsCert" | "tlsKey" | "tlsClientCa">;

/** A top-level setting's source (pem-files.ts): the setting is the field. */
const own = (field: string) => ({ setting: field, field });
const read = (file: string, field: string) => readPemFile(file, own(field));
const certificates = (pem: string, file: string, field: string) => pemCertificates(pem, file, own(field));

function checkKeyStrength(key: KeyObject, file: string) {
  const d = key.asymmetricKeyDetails ?? {};
  const type = key.asymmetricKeyType;
  const bits = type === "ec" ? Number(/(\d{3})/.exec(d.namedCurve ?? "")?.[1] ?? 0) : d.modulusLength ?? 0;
  if ((type === "rsa" || type === "rsa-pss") && bits < MIN_RSA_BITS) {
    throw new ConfigError(`invalid config: tlsKey: ${file} is a ${bits}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`, "tlsKey");
  }
  if (type === "ec" && bits < MIN_EC_BITS) {
    throw new ConfigError(`invalid config: tlsKey: ${file} uses curve ${d.namedCurve}; at least a ${MIN_EC_BITS}-bit curve is required`, "tlsKey");
  }
}

function checkValidity(cert: X509Certificate, file: string, field: string, now: number) {
  if (Date.parse(cert.validTo) < now) throw new ConfigError(`invalid config: ${field}: the certificate in ${file} expired on ${cert.validTo}`, field);
  if (Date.parse(cert.validFrom) > now) throw new ConfigError(`invalid config: ${field}: the certificate in ${file} is not valid before ${cert.validFrom}`, field);
}

/**
 * The listener's TLS options, or undefined for plain HTTP (no --tls-cert). Both cert and key are
 * required together; a client CA turns on mTLS: a client without a certificate signed by that CA
 * is refused during the handshake, before any HTTP is read.
 */
export function serverTls(settings: TlsSettings, now = Date.now()): ServerTls | undefined {
  const { tlsCert, tlsKey, tlsClientCa } = settings;
  if (!tlsCert && !tlsKey) {
    if (tlsClientCa) throw new ConfigError("invalid config: tlsClientCa: client certificates (mTLS) need TLS: give --tls-cert and --tls-key too", "tlsClientCa");
    return undefined;
  }
  if (!tlsCert) throw new ConfigError("invalid config: tlsCert: --tls-key was given without --tls-cert", "tlsCert");
  if (!tlsKey) throw new ConfigError("invalid config: tlsKey: --tls-cert was given without --tls-key", "tlsKey");

  const cert = read(tlsCert, "tlsCert");
  const leaf = certificates(cert, tlsCert, "tlsCert")[0]!;
  checkValidity(leaf, tlsCert, "tlsCert", now);
  const key = read(tlsKey, "tlsKey");
  let keyObject: KeyObject;
  try {
    keyObject = nodeCrypto().createPrivateKey(key);
  } catch (e) {
    throw new ConfigError(`invalid config: tlsKey: ${tlsKey} is not an unencrypted PEM private key: ${(e as Error).message}`, "tlsKey");
  }
  checkKeyStrength(keyObject, tlsKey);
  if (!leaf.checkPrivateKey(keyObject)) {
    throw new ConfigError(`invalid config: tlsKey: ${tlsKey} is not the private key of the certificate in ${tlsCert}`, "tlsKey");
  }
  refuseKeyReadableByAll(tlsKey, own("tlsKey")); // a 0644 key passed serve and verify
  const tls: ServerTls = { cert, key, secureOptions: noOldProtocols() };
  if (tlsClientCa) {
    const ca = read(tlsClientCa, "tlsClientCa");
    for (const c of certificates(ca, tlsClientCa, "tlsClientCa")) checkValidity(c, tlsClientCa, "tlsClientCa", now);
    // rejectUnauthorized is set explicitly: left unset, Bun derives it from NODE_TLS_REJECT_UNAUTHORIZED.
    Object.assign(tls, { ca, requestCert: true, rejectUnauthorized: true });
  }
  return tls;
}
