/**
 * JSON answers (a response_format, a call's arguments) and prose read the loopback forms differently (structured-output
 * run, then its fix-attack run): in JSON a number standing as a value (127.25, 2147483647) is a number, and redacting it
 * broke the JSON; in prose a list or a port ("10.0.0.1, 127.1:8080", "a, 127.1, b") is still an address. An
 * assignment's value is redacted without its name, so JSON keeps its keys. One-shot and streamed a character at a time.
 */
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner } from "../../src/guards/response-scan";

const scanner = createScanner(parseConfig({ responseScan: { burstChars: 0 } }).responseScan);

function both(text: string, json: boolean): string {
  const one = scanner.scan(text, json).text;
  const f = scanner.filter(undefined, json);
  let streamed = "";
  for (const c of text) streamed += f.push(c);
  streamed += f.end();
  expect(streamed).toBe(one);
  return one;
}

test("in JSON answers numbers stay numbers; in prose the same forms are addresses", () => {
  const json = '{"lon": -127.25, "max": 2147483647, "list": [127.5,\n      2130706433]}';
  expect(both(json, true)).toBe(json);
  expect(both(json, false)).not.toBe(json);
  for (const prose of ["Hosts to try: 10.0.0.1, 127.1:8080 and the db.", "fallback order: primary, 2130706433 then none", "a, 127.1, b", "see [127.1:6379] for redis", "主机列表：10.0.0.5，127.1，还有别的"]) {
    expect(both(prose, false)).not.toContain("127.1");
    expect(both(prose, false)).not.toContain("2130706433");
  }
  // a port is no JSON: an address in a JSON answer too
  expect(both('{"a": "127.1:8080"}', true)).toBe('{"a": "[REDACTED:internal-ip]"}');
});

// SDK fidelity run (stop 72): INT32_MAX in code or a strict json_schema string ("2147483647") was redacted as
// 127.255.255.255, 0x7fffffff and a float's infinity bits too; an integer is an address where a host stands.
test("an integer is an address where a host stands, or as 127.0.0.1's own forms; INT32_MAX and float bits are numbers", () => {
  for (const text of ["if (x > 0x7fffffff) return INT_MAX; // 2147483647", "inf = 0x7f800000, nan = 0x7fc00000, pattern 0x0A0B0C0D",
    "the Year 2038 problem: 2147483647 seconds", "id 3232235521 in the table",
    // attack on the fix: a `:n` after a number is no port of a host (a ratio, a line number, a key's field)
    "ratio 2147483647:1", "at line 2147483647:12", "GET user:170000000:1", "connect 2886729729:5432"]) {
    expect(both(text, false)).toBe(text);
    expect(both(text, true)).toBe(text);
  }
  expect(both('{"max": "2147483647", "n": [2147483647]}', true)).toBe('{"max": "2147483647", "n": [2147483647]}');
  for (const [text, out] of [
    ["fetch http://3232235521/admin now", "fetch http://[REDACTED:internal-ip]/admin now"], // 192.168.0.1
    ["curl -u me@0x0a000001:8080", "curl -u me@[REDACTED:internal-ip]"],
    // as URL parsers and inet_aton read a host: hex of any length, leading zeros, octal, backslashes, no slashes at all
    ["http://0xa000001/", "http://[REDACTED:internal-ip]/"], ["http://0x0000c0a80001/", "http://[REDACTED:internal-ip]/"],
    ["http://017700000001/", "http://[REDACTED:internal-ip]/"], ["http:3232235521/", "http:[REDACTED:internal-ip]/"],
    ["see http:\\\\3232235521\\ now", "see http:\\\\[REDACTED:internal-ip]\\ now"],
    ["see http://2147483647/", "see http://[REDACTED:internal-ip]/"], ["connect to 2130706433 or 0x7f000001", "connect to [REDACTED:internal-ip] or [REDACTED:internal-ip]"],
    ['{"url": "http://169.254.169.254/"}', '{"url": "http://[REDACTED:internal-ip]/"}'],
  ] as const) expect(both(text, false)).toBe(out);
  expect(both('{"url": "http://3232235521/"}', true)).toBe('{"url": "http://[REDACTED:internal-ip]/"}');
});

test("an assignment's value is redacted, its name and quotes stay (JSON arguments keep parsing)", () => {
  const args = '{"api_key": "Zx9Qw3Er7Ty1Ui5Op2As8Df4", "password": "hunter2-Xq9!"}';
  const out = both(args, true);
  expect(JSON.parse(out)).toEqual({ api_key: "[REDACTED:generic-high-entropy]", password: "[REDACTED:password]" });
  expect(both("the password is hunter2-Xq9!", false)).toBe("the password is [REDACTED:password]");
});

// A third fix-attack run (366bb0b): a named value past 128 characters was redacted in its first 128 only; paths and
// versioned identifiers under the new `…key` names were redacted; Laravel's `base64:` keys, 32-digit hex keys under
// 3.5 bits a character and a JSON float 2147483647.0 were missed or broke the JSON.
test("named values are redacted whole, names with versions and paths are not, base64:/hex keys are, floats stay numbers", () => {
  const long = "kR9mZ2xQ4wL7vB1nT8yH3cF6jD5sA0gP".repeat(12); // 384 characters
  expect(both(`PRIVATE_KEY=${long}`, false)).toBe("PRIVATE_KEY=[REDACTED:generic-high-entropy]");
  for (const text of ["client-key: /home/user/.minikube/profiles/minikube/client.key", 'deployKey: "releases/v1.2.3/app-linux-amd64.tar.gz"',
    'SERVICE_KEY = "com.example.service.v2.UserService";', "clientKey: 'web-frontend-2024-01-15-build'"]) expect(both(text, false)).toBe(text);
  expect(both("APP_KEY=base64:2fl+Ktvkfl+Fuz4Qp/A75G2RTiWVA/ZoKZvp6fiiM10=", false)).toBe("APP_KEY=[REDACTED:generic-high-entropy]");
  expect(both("Ocp-Apim-Subscription-Key: d439fcf97fcf92e64f9f7351defb799e", false)).toBe("Ocp-Apim-Subscription-Key: [REDACTED:generic-high-entropy]");
  const floats = '{"max": 2147483647.0, "n": 2130706433e0}';
  expect(both(floats, true)).toBe(floats);
});

// The same run: kubeconfig's client-key-data (a whole PEM private key in base64, ~2,200 characters on one line) went
// out whole: past the encoded-run window, and a PEM opening was read only as plain text.
test("a private key in base64 (kubeconfig client-key-data) is cut from its start to the end of its run; a certificate is not", () => {
  const body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw".repeat(8);
  const pem = `-----BEGIN RSA PRIVATE KEY-----\n${body.match(/.{1,64}/g)!.join("\n")}\n-----END RSA PRIVATE KEY-----\n`;
  const data = Buffer.from(pem).toString("base64");
  expect(data.length).toBeGreaterThan(2000);
  const kubeconfig = `users:\n- name: admin\n  user:\n    client-key-data: ${data}\n    token: none\n`;
  expect(both(kubeconfig, false)).toBe("users:\n- name: admin\n  user:\n    client-key-data: [REDACTED:private-key]\n    token: none\n");
  for (const label of ["PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"]) {
    const other = Buffer.from(`-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`).toString("base64");
    expect(both(`key: ${other} end`, false)).toBe("key: [REDACTED:private-key] end");
  }
  const cert = Buffer.from(`-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`).toString("base64");
  expect(both(`client-certificate-data: ${cert}`, false)).toBe(`client-certificate-data: ${cert}`);
});
