/**
 * What `appliance update` checks before it touches anything: the signed SHA256SUMS (--signature) or a
 * bare --sha256. A binary built by `bun run release` embeds the release public key and then accepts
 * only signed updates; --pubkey names another key. Returns the digest to install, or undefined after
 * saying why the update is refused (exit 1).
 */
import fs from "node:fs";
import path from "node:path";
import { embeddedReleaseKey, ReleaseVerifyError, signedDigest } from "../release/signature";
import { UsageError } from "./command";

export function releaseDigest(values: Record<string, string | undefined>, binary: string, say: (s: string) => void = (s) => console.log(s)): string | undefined {
  const { signature, sums, pubkey, sha256 } = values;
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/i.test(sha256)) throw new UsageError("--sha256 must be 64 hex characters");
  if ((sums || pubkey) && !signature) throw new UsageError("--sums and --pubkey go with --signature SHA256SUMS.sig");
  const embedded = embeddedReleaseKey();
  if (!signature) {
    if (embedded) {
      say("refusing: this binary was built with a release key and installs only signed updates: give --signature SHA256SUMS.sig (and --sums if SHA256SUMS is not next to it)");
      return undefined;
    }
    if (!sha256) throw new UsageError("update needs --signature SHA256SUMS.sig, or --sha256 HEX (this binary embeds no release key)");
    return sha256.toLowerCase();
  }
  let publicKeyPem = embedded, keySource = "the release key built into this binary";
  if (pubkey) {
    try { publicKeyPem = fs.readFileSync(pubkey, "utf8"); } catch (e) { throw new UsageError(`cannot read --pubkey ${pubkey}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
    keySource = pubkey;
  }
  if (!publicKeyPem) throw new UsageError("--signature needs a public key: this binary embeds none, so give --pubkey KEY.pub");
  try {
    const digest = signedDigest({ binary, sumsFile: sums ?? path.join(path.dirname(signature), "SHA256SUMS"), signatureFile: signature, publicKeyPem, keySource });
    if (sha256 && sha256.toLowerCase() !== digest) {
      say(`refusing: --sha256 ${sha256} differs from the signed SHA256SUMS entry ${digest}`);
      return undefined;
    }
    say(`signature good (${keySource}): SHA256SUMS lists ${path.basename(binary)} as ${digest}`);
    return digest;
  } catch (e) {
    if (!(e instanceof ReleaseVerifyError)) throw e;
    say(`refusing: ${e.message}`);
    return undefined;
  }
}
