/**
 * Red team (binary, json_schema const to make the model write chosen text): secrets in forms the README claims the
 * scanner reads reached the client verbatim, one-shot and streamed: short base64/hex right after `=` (an assignment,
 * a query string: the run was taken for the tail of a longer encoded text), hex with a `0x` prefix, a loopback
 * address ending a sentence ("127.0.0.1."), keys in the Cyrillic/Greek look-alikes the table lacked (Ѵ, Ϲ, …), a PEM
 * whose armor said PRIѴATE. Each is now redacted one-shot, and streamed one character per push and cut in two.
 */
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner } from "../../src/guards/response-scan";
import { shown, streamed } from "../security/scan-helpers";

const scanner = createScanner(parseConfig({ responseScan: { burstChars: 0 } }).responseScan);
const AKIA = "AKIA" + "IOSFODNN7EXAMPLE";
const b64 = Buffer.from(AKIA).toString("base64"), hex = Buffer.from(AKIA).toString("hex");
const pemBody = "MIIEow" + "IBAAKCAQEAz8h3k2lq".repeat(4);

/** [what, text, the part that must not reach the client] */
const CASES: [string, string, string][] = [
  ["base64 after an assignment's =", `x=${b64}`, b64],
  ["base64 in a query string", `url?k=${b64}&x=1`, b64],
  ["hex after =", `k=${hex}`, hex],
  ["hex with 0x", `0x${hex}`, hex],
  ["loopback ending a sentence", "The server listens on 127.0.0.1.", "127.0.0.1"],
  ["short loopback ending a sentence", "Use 127.1.", "127.1"],
  ["fullwidth loopback ending a sentence", "Visit １２７．０．０．１．", "１２７．０．０．１"],
  ["lunate sigma for C", "AKIAIOSFODNN7EXAMPL\u03F9", "IOSFODNN7EXAMPL"],
  ["Cyrillic izhitsa for V in a PEM's armor", `-----BEGIN PRI\u0474ATE KEY-----\n${pemBody}\n-----END PRI\u0474ATE KEY-----`, pemBody],
];

test("each is redacted one-shot, and streamed one character per push and cut in two", () => {
  const leaks: string[] = [];
  for (const [what, text, secret] of CASES) {
    const once = scanner.scan(text).text;
    if (shown(once).includes(secret)) leaks.push(`${what}: ${JSON.stringify(once)}`);
    for (const pieces of [[...text], [text.slice(0, text.length >> 1), text.slice(text.length >> 1)]]) {
      const got = streamed(scanner, pieces).text;
      if (shown(got).includes(secret)) leaks.push(`${what}, streamed in ${pieces.length}: ${JSON.stringify(got)}`);
    }
  }
  expect(leaks).toEqual([]);
});

test("still left alone: a longer dotted number, an encoded text's tail after its own padding, fd0:: (not fc00::/7)", () => {
  for (const text of ["version 127.0.0.1.5 is out", "fd0::5 is no unique-local address"]) expect(scanner.scan(text).text).toBe(text);
  // Two base64 texts run together: the second is read from its start (its own run), not as a tail of the first.
  const two = `${Buffer.from("hello there, friend of mine").toString("base64")}${b64}`;
  expect(scanner.scan(`see ${two}`).findings).toEqual([]);
});
