/**
 * Issue 11 item 5: the streamed response filter keeps state between pushes (what each rule has ruled out, the
 * reader's view of what it holds) so a push costs about what its own text costs. Whatever it keeps, a stream
 * must end with exactly what the one-shot scan of the whole text gives — the same text, the same redactions,
 * the same findings — however the text is cut: here secrets of every rule, in several written forms, inside
 * prose, glued runs, non-ASCII text and other secrets, cut into two pieces at every position, one character per
 * push, and random pieces of 1–6 characters (a tokenizer's sizes).
 */
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner, type Scanner } from "../../src/guards/response-scan";
import { extendView, scanView, type ScanView } from "../../src/guards/scan-view";
import { rng, secretForms, streamed } from "../security/scan-helpers";

const scanner = (action: "redact" | "block") =>
  createScanner(parseConfig({ responseScan: { action, pii: true, burstChars: 0, internalHosts: [".corp", ".internal"] } }).responseScan);
const redactor = scanner("redact"), blocker = scanner("block");

const oneShot = (s: Scanner, text: string) => { const r = s.scan(text); return { text: r.text, findings: [...r.findings].sort() }; };

const AN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SECRETS = [
  "AKIAIOSFODNN7EXAMPLE", "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6", "glpat-" + "Ab3De6Gh9Jk2Mn5Pq8St",
  "xoxb-123456789012-AbCdEfGhIjKlMn", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "sk-proj-" + "Ab3De6Gh9Jk2Mn5Pq8St1vW4",
  "AIza" + "SyB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3h", "npm_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6",
  "api_key=" + "Zx81Lq0Pw7Ty2Ub9Rc4Vn6Me", "password: Tr0ub4dor&3x", "the password is Xk29!pq7",
  "10.12.34.56:8080", "192.168.1.20", "[::1]", "fd00:12:34::5", "0x7f000001", "http://localhost:3000",
  "build7.eu-west.corp", "db.internal", "jane.doe@example.com", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32",
  "+44 20 7946 0958", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
  "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAz8h3k2l\n-----END RSA PRIVATE KEY-----",
  // a key's base64 wrapped over lines (encoded.ts)
  Buffer.from("sk-proj-Ab3De6Gh9Jk2Mn5Pq8St1vW4").toString("base64").match(/.{1,32}/g)!.join("\n"),
];
/** Text around a secret: prose, a glued run (a host label's start), non-ASCII, another rule's prefix, nothing. */
const CONTEXTS = [
  (s: string) => `Here it is: ${s} and that is all.`,
  (s: string) => `abcdefghij${s}klmnop`,
  (s: string) => `数据 ${s}。�many�`,
  (s: string) => `AKIA sk- ey --- ${s}\n`,
  (s: string) => s,
];

function* cases(): Generator<string> {
  const forms = secretForms();
  for (const secret of SECRETS) {
    for (const [name, form] of Object.entries(forms)) {
      if (name !== "plain" && secret.length > 40) continue; // the long ones plain only: keeps the file fast
      const written = form(secret);
      if (written !== undefined) for (const context of CONTEXTS) yield context(written);
    }
  }
}

test("two pieces cut at every position end exactly as the one-shot scan (text, redactions, findings)", () => {
  const diffs: string[] = [];
  let texts = 0, withFindings = 0;
  for (const text of cases()) {
    texts++;
    const want = oneShot(redactor, text);
    if (want.findings.length) withFindings++;
    for (let cut = 0; cut <= text.length; cut++) {
      const got = streamed(redactor, [text.slice(0, cut), text.slice(cut)]);
      if (got.text !== want.text || got.findings.join() !== want.findings.join()) {
        diffs.push(`cut ${cut} of ${JSON.stringify(text)}: ${JSON.stringify(got)} vs one-shot ${JSON.stringify(want)}`);
        break;
      }
    }
  }
  expect(texts).toBeGreaterThan(400);
  expect(withFindings).toBeGreaterThan(300); // the cases do hold findings: a lost one would show
  expect(diffs.slice(0, 5)).toEqual([]);
});

test("one character per push and tokenizer-sized pieces end exactly as the one-shot scan, in redact and block mode", () => {
  const r = rng(5), diffs: string[] = [];
  for (const text of cases()) {
    const pieces: string[] = [];
    for (let i = 0; i < text.length;) { const n = 1 + Math.floor(r() * 6); pieces.push(text.slice(i, i + n)); i += n; }
    const want = oneShot(redactor, text);
    for (const [how, got] of [["chars", streamed(redactor, [...text])], ["pieces", streamed(redactor, pieces)]] as const) {
      if (got.text !== want.text || got.findings.join() !== want.findings.join()) diffs.push(`${how} ${JSON.stringify(text)}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
    }
    const block = oneShot(blocker, text), got = streamed(blocker, pieces);
    if (got.blocked !== block.findings.length > 0 || got.findings.join() !== block.findings.join()) {
      diffs.push(`block ${JSON.stringify(text)}: ${JSON.stringify(got)} vs ${JSON.stringify(block)}`);
    }
  }
  expect(diffs.slice(0, 5)).toEqual([]);
});

test("long runs streamed a character at a time: glued words, base64 and hex blobs, U+FFFD runs, spaced letters", () => {
  const r = rng(17), pick = (alphabet: string, n: number) => Array.from({ length: n }, () => alphabet[Math.floor(r() * alphabet.length)]).join("");
  const runs = [
    pick("abcdefghijklmnopqrstuvwxyz", 300), pick(AN + "+/", 400), pick("0123456789abcdef", 300), "\ufffd".repeat(400),
    "out\ufffdmany\ufffd" + "come".repeat(80), "A K I A I O S F O D N N 7 E X A M P L E", Buffer.from("key AKIAIOSFODNN7EXAMPLE ok").toString("base64"),
    pick("abc.", 300) + ".corp", "w\tx\ty\tz\t".repeat(20),
  ];
  const diffs: string[] = [];
  for (const run of runs) {
    for (const text of [`start ${run} end`, run, `${run}${SECRETS[0]}`]) {
      const want = oneShot(redactor, text), got = streamed(redactor, [...text]);
      if (got.text !== want.text || got.findings.join() !== want.findings.join()) diffs.push(`${JSON.stringify(text.slice(0, 40))}…: ${JSON.stringify(got).slice(0, 300)} vs ${JSON.stringify(want).slice(0, 300)}`);
    }
  }
  expect(diffs.slice(0, 5)).toEqual([]);
});

test("a view extended from the last one (front dropped, text appended) is the view made from scratch", () => {
  const r = rng(23), bits = ["a", "Z", " ", "\t", "é", "ｓ", "А", "\u200b", "\ufffd", "数", "𝐀", "\ud835", "\udc00", "ﬁ", "ﷺ", "A K I A ", "x y z w v u t s ", "7", "-", "."];
  const plain = (v: ScanView) => ({ text: v.text, source: v.source, from: v.from && [...v.from], to: v.to && [...v.to], spaced: v.spaced });
  const diffs: string[] = [];
  for (let k = 0; k < 4000; k++) {
    const make = (n: number) => Array.from({ length: n }, () => bits[Math.floor(r() * bits.length)]).join("");
    const a = make(Math.floor(r() * 12)), b = make(Math.floor(r() * 4)), dropped = Math.floor(r() * (a.length + 1));
    const text = a.slice(dropped) + b, want = plain(scanView(text)), got = plain(extendView(scanView(a), dropped, text));
    if (JSON.stringify(got) !== JSON.stringify(want)) diffs.push(`${JSON.stringify(a)} -${dropped} +${JSON.stringify(b)}`);
  }
  expect(diffs.slice(0, 5)).toEqual([]);
});
