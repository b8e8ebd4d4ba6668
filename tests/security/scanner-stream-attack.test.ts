/**
 * Red-team of the response scanner's streaming hold-back (issue 11 item 5, task G): the streamed filter must never
 * show a character of a secret that the one-shot scan (`scanner.scan`) redacts, however the text is chunked.
 *  - every rule's secret, in six written forms, in three contexts, split into two chunks at every position;
 *  - a deterministic fuzz: random prose, fillers that start rules' prefixes ("sk-", "ey", "---", "AKIA", "token="),
 *    secrets in random forms (fullwidth, look-alike letters, single zero-width characters, spaced out, base64, hex,
 *    base64url), streamed one character per push, in random splits, as synchronous bursts (burstChars 1024) and
 *    with macrotasks between pushes, in redact and block mode.
 * Inputs of the classes in scanner-stream-attack-leaks.test.ts (long invisible or blank runs, names longer than a
 * rule's reach) are not generated here: those are known leaks, tested there.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner, type Scanner } from "../../src/guards/response-scan";
import { rng, secretForms, shown, writtenCases } from "./scan-helpers";

const config = (action: "redact" | "block", burstChars: number) =>
  parseConfig({ responseScan: { action, pii: true, burstChars, internalHosts: [".corp", ".internal"] } }).responseScan;
const redactor = createScanner(config("redact", 0)), blocker = createScanner(config("block", 0));
const burster = createScanner(config("redact", 1024)), batcher = createScanner(config("redact", 64));

const AN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * Pieces of `secret` (8 code units, each piece taken at every offset) that the streamed output shows and the
 * one-shot output does not: the leak. Empty when the stream shows nothing more of the secret.
 */
function leaked(secret: string, oneShot: string, streamedOut: string): string[] {
  const one = shown(oneShot), st = shown(streamedOut), out: string[] = [];
  for (let i = 0; i + 8 <= secret.length; i++) {
    const piece = secret.slice(i, i + 8);
    if (st.includes(piece) && !one.includes(piece)) out.push(piece);
  }
  return out;
}

function streamSync(s: Scanner, pieces: string[]) {
  const f = s.filter();
  let out = "";
  for (const p of pieces) out += f.push(p);
  return { out: out + f.end(), blocked: f.blocked };
}

/** Pushes with a macrotask between some of them, so both the burst path and the per-chunk path are taken. */
async function streamAsync(s: Scanner, pieces: string[], r: () => number) {
  const f = s.filter();
  let out = "";
  for (const p of pieces) {
    if (r() < 0.3) await new Promise((resolve) => setImmediate(resolve));
    out += f.push(p);
  }
  return out + f.end();
}

function makeSecrets(r: () => number): [string, string][] {
  const rs = (alpha: string, n: number) => { let s = ""; for (let i = 0; i < n; i++) s += alpha[Math.floor(r() * alpha.length)]; return s; };
  const n = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T,>(a: T[]) => a[Math.floor(r() * a.length)]!;
  return [
    ["aws-access-token", "AKIA" + rs("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)],
    ["github-pat", "ghp_" + rs(AN, 36)],
    ["github-fine-grained-pat", "github_pat_" + rs(AN, 82)],
    ["gitlab-pat", "glpat-" + rs(AN, 20)],
    ["slack-token", `xoxb-${rs("0123456789", 12)}-${rs(AN, n(10, 60))}`],
    ["stripe-access-token", "sk_live_" + rs(AN, n(10, 80))],
    ["openai-api-key", "sk-proj-" + rs(AN + "-_", n(20, 150))],
    ["anthropic-api-key", "sk-ant-api03-" + rs(AN, n(80, 100))],
    ["gcp-api-key", "AIza" + rs(AN, 35)],
    ["npm-access-token", "npm_" + rs(AN, 36)],
    ["appliance-api-key", `apk_${rs("0123456789abcdef", 16)}_${rs(AN, 43)}`],
    ["generic-high-entropy", pick(["api_key", "secret", "token", "auth", "access-key"]) + pick(["=", ": ", " = ", "='", '": "']) + rs(AN, n(20, 100))],
    ["password", pick(["password", "pwd", "passcode"]) + pick(["=", ": ", " is "]) + rs(AN + "!$%&", n(8, 40))],
    ["internal-ip", `10.${n(0, 255)}.${n(0, 255)}.${n(0, 255)}${pick(["", ":8080"])}`],
    ["internal-ip", `192.168.${n(0, 255)}.${n(1, 254)}`],
    ["internal-ip", pick(["127.0.0.1", "[::1]:8080", "fd00:12:34::5", "[fe80::1]", "0x7f000001", "2130706433", "169.254.169.254"])],
    ["localhost-url", `http://localhost:${n(1, 65535)}`],
    ["internal-host", `${rs("abcdefgh", n(3, 30))}.${rs("abcdefgh-", n(1, 20))}x.${pick(["corp", "internal"])}`],
    ["email", `${rs("abcdefgh", n(1, 20))}.${rs("abcdefgh", n(1, 10))}@${rs("abcdefgh", n(3, 30))}.com`],
    ["payment-card", pick(["4111 1111 1111 1111", "4111111111111111", "5500-0000-0000-0004"])],
    ["iban", pick(["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"])],
    ["phone", pick(["+44 20 7946 0958", "+1 (415) 555-2671"])],
    ["jwt", `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx${rs(AN, n(10, 200))}.${rs(AN + "-_", 43)}`],
    ["private-key", `-----BEGIN ${pick(["", "RSA ", "EC ", "OPENSSH "])}PRIVATE KEY-----\n${rs(AN, 64)}\n${rs(AN, n(8, 64))}\n-----END PRIVATE KEY-----`],
  ];
}

const pick1 = <T,>(r: () => number, a: T[]) => a[Math.floor(r() * a.length)]!;

describe("streamed filter never shows more of a secret than the one-shot scan", () => {
  test("every rule, every form, split into two chunks at every position", () => {
    const r = rng(2026), secrets = makeSecrets(r), forms = secretForms(r);
    const contexts = [(s: string) => `Here it is: ${s} and that is all.`, (s: string) => `"${s}"\n`, (s: string) => `x${s}`];
    const leaks: string[] = [];
    let streams = 0, caught = 0;
    for (const { rule, form, written, text } of writtenCases(secrets, forms, contexts)) {
      const one = redactor.scan(text);
      if (one.findings.length) caught++;
      for (let cut = 1; cut < text.length; cut++) {
        const { out } = streamSync(redactor, [text.slice(0, cut), text.slice(cut)]);
        streams++;
        const l = leaked(written, one.text, out);
        if (l.length) leaks.push(`${rule}/${form} cut ${cut}: ${JSON.stringify(text)} -> ${JSON.stringify(out)}`);
      }
    }
    expect(streams).toBeGreaterThan(20_000);
    expect(caught).toBeGreaterThan(250); // the one-shot scan does catch these: a leak would show
    expect(leaks.slice(0, 5)).toEqual([]);
  });

  test("inside a JSON string (a json_schema answer, tool arguments), escaped, escape-spaced or \\u-escaped: caught (red team)", () => {
    const forms = secretForms(rng(7));
    let cases = 0;
    for (const [rule, secret] of makeSecrets(rng(7))) {
      for (const name of ["JSON string", "JSON, escape-spaced", "JSON, \\u escapes"]) {
        const written = forms[name]!(secret);
        if (written === undefined) continue;
        cases++;
        const text = `{"answer":"${written}","more":1}`;
        const one = redactor.scan(text);
        expect({ rule, name, findings: one.findings.length > 0 }).toEqual({ rule, name, findings: true });
        expect(one.text).not.toContain(written);
        expect(JSON.parse(one.text).more).toBe(1); // what follows the secret is untouched, the JSON still parses
        expect(streamSync(redactor, [...text]).out).toBe(one.text);
      }
    }
    expect(cases).toBeGreaterThan(20);
  });

  test("escapes and surrogate pairs being written at a chunk's end are held: stream = one-shot at every split (second red team)", () => {
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    const texts = [
      "api_key: TAlY1qw6VYf8v\\ud835\\udc15Ns0yO76SZheBEi3T x", // an escaped surrogate pair (𝐕) inside the value
      "key AKIAIOSFODNN7EXAMPL\\ud835\\udc04 done", // … as the key's last letter (𝐄)
      "api_key: TAlY1qw6VYf8v\u{1d415}Ns0yO76SZheBEi3T x", // the raw pair, pushed one code unit at a time below
      `{"t":"${jwt}\\", "n": 1}`, // an escaped quote right after a JWT: the JSON must keep it
      "x\\bAKIAIOSFODNN7EXAMPLE", // \b separates as a raw backspace does
    ];
    for (const text of texts) {
      for (const s of [redactor, blocker]) {
        const one = s.scan(text);
        expect(one.findings.length).toBeGreaterThan(0);
        expect(streamSync(s, text.split("")).out).toBe(one.text);
        for (let i = 1; i < text.length; i++) expect(streamSync(s, [text.slice(0, i), text.slice(i)]).out).toBe(one.text);
      }
    }
  });

  test("block: a stream stops at the first finding; nothing of it or after it is sent, redacted or not (red team)", () => {
    const text = "hello AKIAIOSFODNN7EXAMPLE and then many more words follow the secret here";
    for (const pieces of [[...text], text.split(/(?<= )/), [text]]) {
      const b = streamSync(blocker, pieces);
      expect(b.blocked).toBe(true);
      expect(b.out).toBe("hello ");
    }
    const b = streamSync(blocker, ["see ", "AKIAIOSFODNN7EXAMPLE", " then ", "more"]);
    expect(b.out).toBe("see ");
  });

  test("fuzz: random texts, one char per push, random splits, bursts, redact and block", async () => {
    const r = rng(11), forms = secretForms(r);
    const fillers = ["The answer is ", "see ", " and ", "\n", "`", "\"", "'", ": ", "=", "-", ".", "x", "AKIA", "sk-", "ey",
      "eyJ", "---", "-----BEGIN ", "a b c ", "1 2 3 4 ", "@", "http://", ".corp", "  ", "\t", "é", "\u200b", "ｓ", "token=",
      "password ", "0x", "10.", "+44 ", "QUtJQ", "414b", "ghp_", "==", "_"];
    const leaks: string[] = [];
    let caught = 0;
    const cases = 700;
    for (let k = 0; k < cases; k++) {
      const secrets = makeSecrets(r);
      let text = "";
      const written: string[] = [];
      for (let p = 1 + Math.floor(r() * 3); p > 0; p--) {
        for (let q = Math.floor(r() * 4); q > 0; q--) text += pick1(r, fillers);
        const form = pick1(r, Object.values(forms));
        const w = form(pick1(r, secrets)[1]) ?? pick1(r, secrets)[1];
        written.push(w);
        text += w;
      }
      text += pick1(r, fillers);
      const one = redactor.scan(text);
      if (one.findings.length) caught++;
      const splits: string[] = [];
      for (let i = 0; i < text.length;) { const n = 1 + Math.floor(r() * 12); splits.push(text.slice(i, i + n)); i += n; }
      const outs: [string, string][] = [
        ["one char", streamSync(redactor, [...text]).out],
        ["random", streamSync(redactor, splits).out],
        ["sync burst", streamSync(burster, [...text]).out],
      ];
      if (k % 4 === 0) outs.push(["macrotasks", await streamAsync(batcher, splits, r)]);
      const b = streamSync(blocker, [...text]);
      const oneBlocked = blocker.scan(text);
      if (oneBlocked.findings.length && !b.blocked) leaks.push(`not blocked: ${JSON.stringify(text)}`);
      outs.push(["block", b.out]);
      // ...and it stops at the first finding: what it sent is the clean text before it, no marker, nothing after.
      const mark = one.text.indexOf("[REDACTED:");
      if (!(mark < 0 ? one.text : one.text.slice(0, mark)).startsWith(b.out)) {
        leaks.push(`case ${k} block went on past its first finding: ${JSON.stringify(text)} -> ${JSON.stringify(b.out)}`);
      }
      // Block mode too is held to what redaction hides: text before the first finding is sent before the stream
      // stops (the one-shot block shows nothing), and a piece of a written secret that no rule reads as one (a phone
      // number run into the next word) is in both.
      for (const [how, out] of outs) for (const w of written) {
        const l = leaked(w, one.text, out);
        if (l.length) leaks.push(`case ${k} ${how}: ${JSON.stringify(text)} -> ${JSON.stringify(out)} (one-shot ${JSON.stringify(one.text)})`);
      }
    }
    expect(caught).toBeGreaterThan(cases / 3);
    expect(leaks.slice(0, 5)).toEqual([]);
  });
});
