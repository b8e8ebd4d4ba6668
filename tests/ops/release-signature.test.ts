/**
 * The signature file `update --signature` reads: 64 raw bytes or their base64, and base64 as the `base64` tool writes
 * it by default (wrapped at 76 characters: an operator run had it refused as "90 bytes"; `base64 -w0` worked).
 */
import { expect, test } from "bun:test";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { signSums, signedDigest } from "../../src/release/signature";
import { tmpDir } from "../helpers";

test("a signature given raw, as one line of base64, or as base64 wrapped over lines (LF or CRLF) is read; other bytes are not", () => {
  const dir = tmpDir("appliance-sig-");
  try {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
    const digest = "a".repeat(64);
    const sums = Buffer.from(`${digest}  appliance-linux-x64\n`);
    fs.writeFileSync(path.join(dir, "SHA256SUMS"), sums);
    const sig = signSums(sums, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    const b64 = sig.toString("base64");
    const check = (bytes: Buffer | string) => {
      fs.writeFileSync(path.join(dir, "SHA256SUMS.sig"), bytes);
      return signedDigest({ binary: path.join(dir, "appliance-linux-x64"), sumsFile: path.join(dir, "SHA256SUMS"), signatureFile: path.join(dir, "SHA256SUMS.sig"),
        publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(), keySource: "test key" });
    };
    expect(check(sig)).toBe(digest);
    expect(check(`${b64}\n`)).toBe(digest);
    expect(check(`${b64.slice(0, 76)}\n${b64.slice(76)}\n`)).toBe(digest);
    expect(check(`${b64.slice(0, 76)}\r\n${b64.slice(76)}\r\n`)).toBe(digest);
    expect(() => check(`${b64.slice(0, 80)}!\n`)).toThrow(/not an Ed25519 signature/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
