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
// Leak run: a key's body without its BEGIN line (a model continuing "-----BEGIN RSA PRIVATE KEY-----\nMIIE…").
const bodyLines = ["MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu", "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm",
  "o3qGy0t6z09AIJtH+5OeRV1be+N4cDYJKffGzDa88vQENZiRm0GRq6a+HPGQMd2k", "/5OiPgoTdSy7bcF9IGpSE8ZgGKzgYQVZeN97YE00"];
const keyEnd = "-----END RSA PRIVATE KEY-----";
// Leak run: base64 wrapped at 76 columns (coreutils' base64), 64 (PEM): each line alone decodes to a piece of the key.
const openaiKey = "sk-proj-" + "p9qRs2tUvWxYz1AbCdEfGh3IjKlMn4OpQrStUv5WxYzAb6CdEfGh7IjKlMn8OpQrStUv9WxYz0AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGhIjKlMnOpQrStUvWxYzAb12345678";
const wrapped = (w: number, nl: string) => Buffer.from(openaiKey).toString("base64").match(new RegExp(`.{1,${w}}`, "g"))!.join(nl);

/** [what, text, the part that must not reach the client] */
const CASES: [string, string, string][] = [
  ["base64 after an assignment's =", `x=${b64}`, b64],
  ["base64 in a query string", `url?k=${b64}&x=1`, b64],
  ["hex after =", `k=${hex}`, hex],
  ["hex with 0x", `0x${hex}`, hex],
  // Review: a prefix faking another encoded text's padding (24+ alphabet characters, then = or ==).
  ["base64 after a fake padding", `abcdefghijklmnopqrstuvwxyza=${b64}`, b64],
  ["base64 after a fake double padding", `abcdefghijklmnopqrstuvwxyz==${b64}`, b64],
  ["hex after a fake padding", `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=${hex}`, hex],
  ["loopback ending a sentence", "The server listens on 127.0.0.1.", "127.0.0.1"],
  ["short loopback ending a sentence", "Use 127.1.", "127.1"],
  ["fullwidth loopback ending a sentence", "Visit １２７．０．０．１．", "１２７．０．０．１"],
  ["lunate sigma for C", "AKIAIOSFODNN7EXAMPL\u03F9", "IOSFODNN7EXAMPL"],
  // Review: scripts beyond Cyrillic/Greek/Armenian (now from Unicode's confusables data), and Armenian ց.
  ["Lisu A", "\uA4EEKIAZ3QWXERT5YUI2OPL", "Z3QWXERT5YUI2OPL"],
  ["Cherokee A", "\u13AAKIAZ3QWXERT5YUI2OPL", "Z3QWXERT5YUI2OPL"],
  ["Canadian syllabics A", "AKI\u15C5Z3QWXERT5YUI2OPL", "Z3QWXERT5YUI2OPL"],
  ["Lisu K", "A\uA4D7IAZ3QWXERT5YUI2OPL", "Z3QWXERT5YUI2OPL"],
  ["Coptic O", "AKIAZ3QWXERT5YUI2\u2C9EPL", "Z3QWXERT5YUI2"],
  ["small capital P (read as p)", "gh\u1D18_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6", "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"],
  ["Armenian ց for g", "\u0581hp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6", "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"],
  ["Cyrillic izhitsa for V in a PEM's armor", `-----BEGIN PRI\u0474ATE KEY-----\n${pemBody}\n-----END PRI\u0474ATE KEY-----`, pemBody],
  // Leak run: dashes Unicode lists as confusable with "-" that the hand-made table lacked (the whole key went out).
  ...["\u02D7", "\u2796", "\u2CBA", "\u2E3A"].map((d): [string, string, string] =>
    [`PEM armor in U+${d.codePointAt(0)!.toString(16).toUpperCase()} dashes`, `-----BEGIN RSA PRIVATE KEY-----\n${pemBody}\n-----END RSA PRIVATE KEY-----`.replaceAll("-", d), pemBody]),
  // Red-team run (stop 74): one combining accent, a precomposed accented letter or a C1 control hid every rule.
  ["a combining accent in a PEM's armor", `-----BEGIN RSA PRI\u0301VATE KEY-----\n${pemBody}\n-----END RSA PRIVATE KEY-----`, pemBody],
  ["a precomposed accented letter in a PEM's armor", `-----BEGIN RSA PR\u00CDVATE KEY-----\n${pemBody}\n-----END RSA PRIVATE KEY-----`, pemBody],
  ["a combining dot below in a JWT", `ey\u0323JhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV`, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"],
  ["a combining low line in an AWS key", "AKIAZ3QWX\u0332ERT5YUI2OPL", "ERT5YUI2OPL"],
  ["an accented letter in an AWS key", "AKIAZ3QWX\u00C9RT5YUI2OPL", "RT5YUI2OPL"],
  ["a C1 control (CSI) in an AWS key", "AKIAZ3QWX\u009bERT5YUI2OPL", "ERT5YUI2OPL"],
  // Attack on the fix: marks at U+3000 and above were kept.
  ["a musical-symbol mark in an AWS key", "AKIAZ3QWX\u{1D167}ERT5YUI2OPL", "ERT5YUI2OPL"],
  ["a dakuten mark in a PEM's armor", `-----BEGIN PRI\u3099VATE KEY-----\n${pemBody}\n-----END PRIVATE KEY-----`, pemBody],
  ["a half mark in a JWT", `ey\uFE20JhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV`, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"],
  ["a combining accent in an internal address", "see http://10.0\u0301.0.5/ now", "0.5/"],
  // Red-team run (stop 74): a fixed-length token ending in `-` had no word boundary after it and was never matched.
  ["a GCP key ending in -", 'key "AIzaSyD3f9Kq2LmNpQrStUvWxYz0123456ab12-" set', "SyD3f9Kq2LmNpQrStUvWxYz0123456ab12"],
  ["a GitLab PAT ending in -", "glpat-aB3dE5gH7jK9mN1pQr2-", "aB3dE5gH7jK9mN1pQr"],
  // Attack on the fix: a token followed by `-` (the word boundary alone took it) passed.
  ["a GitLab PAT followed by -x", "old token glpat-Ab3De6Gh9Jk2Mn5Pq8St-x", "Ab3De6Gh9Jk2Mn5Pq8St"],
  ["a GCP key followed by -prod", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW-prod", "SyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"],
  ["a GitLab PAT ending in - spaced out beside a digit", [..."glpat-aB3dE5gH7jK9mN1pQr2-"].join(" ") + " 1", "9 m N 1"],
  ["base64 wrapped at 76 columns", `${wrapped(76, "\n")}\n`, wrapped(76, "\n").split("\n")[1]!],
  ["base64 wrapped at 64 columns, CRLF, in prose", `Encoded:\r\n${wrapped(64, "\r\n")}\r\nDone.`, wrapped(64, "\n").split("\n")[2]!],
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

// Leak run: a model continuing a key it was handed the start of writes its body and END line, never a BEGIN line: the
// prompt opened the key (opensKey), and the answer's filter starts inside it.
test("an answer to a prompt that opens a key is dropped until the key's END line, one-shot and streamed", () => {
  const prompt = "Continue this:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow";
  expect([scanner.opensKey(prompt), scanner.opensKey(`${prompt}\n${bodyLines.join("\n")}\n${keyEnd}`), scanner.opensKey("no key here")]).toEqual([true, false, false]);
  expect(scanner.opensKey("-----BEGIN RSA PRI\u0474ATE KEY-----\nMIIE")).toBe(true); // as the scanner reads armor
  // Fix-attack run: a sentence quoting a BEGIN line is no key left open (it blanked every answer).
  expect(scanner.opensKey("Policy: never print -----BEGIN RSA PRIVATE KEY----- blocks.")).toBe(false);
  expect(scanner.opensKey('const HEADER = "-----BEGIN RSA PRIVATE KEY-----";')).toBe(false);
  // A prompt that fails late after thousands of blank lines is read in one pass (3036737's regex backtracked for seconds).
  expect(scanner.opensKey("-----BEGIN RSA PRIVATE KEY-----" + "\n    ".repeat(5000) + "!")).toBe(false);
  // an empty answer stays empty: no marker, no finding
  const empty = scanner.filter("private-key");
  expect([empty.whole(""), empty.findings]).toEqual(["", []]);
  for (const answer of [`${bodyLines.join("\n")}\n${keyEnd}\nThat is the key.`, JSON.stringify({ k: `${bodyLines.join("\n")}\n${keyEnd}` }),
    `${bodyLines.join("\n\n")}\n\n${keyEnd}\nThat is the key.`, bodyLines.join("\n")]) {
    const whole = scanner.filter("private-key").whole(answer);
    const f = scanner.filter("private-key");
    let streamedOut = "";
    for (const c of answer) streamedOut += f.push(c);
    streamedOut += f.end();
    for (const got of [whole, streamedOut]) {
      expect(got.startsWith("[REDACTED:private-key]")).toBe(true);
      for (const line of bodyLines) expect(got).not.toContain(line.slice(0, 16));
    }
    if (answer.includes("That is")) expect(streamedOut).toBe("[REDACTED:private-key]\nThat is the key.");
  }
});

test("still left alone: a longer dotted number, fd0:: (not fc00::/7), base64 of ordinary text after =, base64 lines, wrapped base64 of ordinary text", () => {
  for (const text of ["version 127.0.0.1.5 is out", "fd0::5 is no unique-local address",
    `data=${Buffer.from("hello there, friend of mine").toString("base64")}`, `${bodyLines.join("\n")}\nThat was no key.\n`,
    Buffer.from("hello there, my friend, how are you doing today? fine, thanks, and you are well").toString("base64").match(/.{1,76}/g)!.join("\n")]) {
    expect(scanner.scan(text).text).toBe(text);
    expect(streamed(scanner, [...text]).text).toBe(text);
  }
});

// Red-team run (stop 74): a URL host in dotted parts written in hex or octal is 127.0.0.1 or a private address to URL
// parsers; it went out as written.
test("a URL host in hex or octal dotted parts that URL parsers read as an internal address is redacted; public ones and versions are not", () => {
  for (const host of ["0x7f.0.0.1", "0x7f.0x0.0x0.0x1", "0300.0250.0.1", "0xc0.0xa8.0x01.0x01", "0x7f.1", "0xa.0.0.5:8080", "0.0.0.0", "0x0.0.0.0",
    "0x00000000007f.0.0.1", "0x7f.00000000000000.1", "user@0x7f.0.0.1"]) {
    const text = `fetch http://${host}/admin now`;
    const want = `fetch http://${host.startsWith("user@") ? "user@" : ""}[REDACTED:internal-ip]/admin now`;
    for (const got of [scanner.scan(text).text, streamed(scanner, [...text]).text]) expect({ host, got }).toEqual({ host, got: want });
  }
  // second attack on the fix: floor division and metric@threshold are no hosts
  for (const text of ["fetch http://0x8.0x8.0x8.0x8/ now", "see https://1.2.3.4/", "version 0x1.0x2 of it", "http://010.010.010.010/ is 8.8.8.8",
    "print(total//0.05)", "x = a//0.01 + b", "lr@0.01 and wd@0.001", "mAP@0.05:0.95", "bob@0.05.com", "see http://0.05/"]) {
    expect(scanner.scan(text).text).toBe(text);
  }
});
