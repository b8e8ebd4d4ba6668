/**
 * Upgrade run: a key made by a release that signed requests with HMAC (requireSignature, no Ed25519 public key) kept
 * its old client's HMAC signatures after the upgrade, which were refused as a malformed Ed25519 signature: the way
 * out (rotate it with a public key) was said only for a well-formed Ed25519 signature the old client never sends.
 */
import { expect, test } from "bun:test";
import crypto from "node:crypto";
import { verifySignature } from "../../src/guards/signature";

test("a key without a public key says how to fix it, whatever the signature looks like", () => {
  const now = Date.parse("2030-01-01T00:00:00Z"), ts = String(Math.floor(now / 1000));
  const hmac = crypto.createHmac("sha256", "k").update(`GET\n/v1/models\n${ts}\n`).digest("hex");
  for (const sig of [hmac, "not a signature", undefined]) {
    const headers = new Headers({ "x-appliance-timestamp": ts, ...(sig && { "x-appliance-signature": sig }) });
    expect(() => verifySignature({ publicKey: null, method: "GET", path: "/v1/models", body: "", headers, nowMs: now, startedMs: now - 1000 }))
      .toThrow("rotate it with keys rotate NAME --public-key FILE");
  }
});
