/**
 * Differential fuzz of the stream's hold-back where no host-name rule holds every word: with internalHosts empty, a
 * run of letters is held only while it could still be an encoded secret (encoded.ts: the base64 bits its characters
 * so far fix) or a spaced-out run that may still join into a word (live-tail.ts). Random texts glue encoded secrets
 * (cut short, padded or not, after or before a few more alphabet characters), random base64 runs, spaced-out letters and single letters,
 * and must come out of a stream, however it is cut, exactly as the one-shot scan gives them: text, redactions,
 * findings, and in block mode whether it blocks.
 */
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner } from "../../src/guards/response-scan";
import { rng, streamed } from "../security/scan-helpers";

const scanner = (action: "redact" | "block", pii: boolean) =>
  createScanner(parseConfig({ responseScan: { action, pii, burstChars: 0, internalHosts: [] } }).responseScan);

const SECRETS = ["AKIAIOSFODNN7EXAMPLE", "ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6", "glpat-Ab3De6Gh9Jk2Mn5Pq8St",
  "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "npm_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6", "password: Tr0ub4dor&3x", "api_key=Zx81Lq0Pw7Ty2Ub9Rc4Vn6Me"];
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";
const SEPARATORS = ["", "", " ", "\n", ". ", "=", "==", ", ", "\u200b"];

/** One random text: encoded secrets and near-misses glued to letters, spaced-out runs, separators. */
function text(r: () => number): string {
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const chars = (alphabet: string, n: number) => Array.from({ length: n }, () => pick([...alphabet])).join("");
  const printable = (n: number) => chars("abcdefghij KLMNOP:=_-0123", n);
  const parts: string[] = [];
  for (let k = 1 + Math.floor(r() * 6); k > 0; k--) {
    const kind = Math.floor(r() * 6);
    let part: string;
    if (kind === 0 || kind === 1) {
      // An encoded secret, its alignment moved by a printable prefix, maybe cut short at either end.
      const plain = printable(Math.floor(r() * 4)) + pick(SECRETS) + printable(Math.floor(r() * 3));
      part = Buffer.from(plain).toString(pick(["base64", "base64url", "hex"] as const));
      if (r() < 0.5) part = part.replace(/=+$/, "");
      if (r() < 0.3) part = part.slice(0, part.length - 1 - Math.floor(r() * 6));
      if (r() < 0.2) part = part.slice(1 + Math.floor(r() * 3));
      if (r() < 0.4) part += chars(B64, 1 + Math.floor(r() * 6)); // the run goes on: one more quad, or part of one
    } else if (kind === 2) part = Buffer.from(printable(4 + Math.floor(r() * 30))).toString(pick(["base64", "base64url", "hex"] as const));
    else if (kind === 3) part = chars(B64, 1 + Math.floor(r() * (r() < 0.5 ? 4 : 40)));
    else if (kind === 4) part = [...(r() < 0.5 ? pick(SECRETS).replace(/\W/g, "") : chars("abcdefghijklmnopqrstuvwxyz0123456789AKI", 1 + Math.floor(r() * 12)))].join(" ");
    else part = pick(["data", "the", "l", "Z", "q", "-", "4", "token:", "see", pick(SECRETS)]);
    parts.push(part, pick(SEPARATORS));
  }
  return parts.join("");
}

test("streamed in any cut, no host rule: exactly the one-shot scan (text, findings, block), 3,000 random texts", () => {
  const r = rng(2026), diffs: string[] = [];
  let withFindings = 0;
  const scanners = [false, true].map((pii) => ({ redact: scanner("redact", pii), block: scanner("block", pii) }));
  for (let i = 0; i < 3000; i++) {
    const t = text(r), { redact, block } = scanners[i % 2]!;
    const pieces: string[] = [];
    for (let at = 0; at < t.length;) { const n = 1 + Math.floor(r() * 6); pieces.push(t.slice(at, at + n)); at += n; }
    const one = redact.scan(t), want = { text: one.text, findings: [...one.findings].sort() };
    if (want.findings.length) withFindings++;
    for (const [how, cut] of [["chars", [...t]], ["pieces", pieces]] as const) {
      const got = streamed(redact, [...cut]);
      if (got.text !== want.text || got.findings.join() !== want.findings.join()) diffs.push(`${how} ${JSON.stringify(t)}: ${JSON.stringify(got.text)} vs ${JSON.stringify(want.text)}`);
    }
    const blocked = streamed(block, pieces);
    if (blocked.blocked !== want.findings.length > 0) diffs.push(`block ${JSON.stringify(t)}: blocked ${blocked.blocked}, one-shot findings ${want.findings}`);
  }
  expect(diffs.slice(0, 5)).toEqual([]);
  expect(withFindings).toBeGreaterThan(250); // the texts do hold findings (358 of 3,000): a missed one would show
});
