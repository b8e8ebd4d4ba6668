/**
 * Issue 11 item 5: the response scanner now holds back only the tail that more text could still turn into (part
 * of) a finding (live-tail.ts), not the last few words. Red-team check of that narrower hold: every rule's secret,
 * written plain, fullwidth, in look-alike letters, with zero-width characters between its characters, spaced out
 * and (secret rules) base64/hex encoded, streamed one character per push and in random splits with every chunk
 * scanned on arrival (burstChars 0), comes out exactly as the one-shot scan redacts it, never with a piece of the
 * secret; in block mode the stream is blocked with nothing of it sent.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner } from "../../src/guards/response-scan";
import { repeat, rng, secretForms, shown, writtenCases } from "./scan-helpers";

const R = "q8Zr2LxP0vN7wKcT5yHbM3sDj6Fg9UeYa1Wi4Ot";
/** [rule, secret as written]. One or more per rule; the long secrets (JWT, PEM) have their own file too. */
const SECRETS: [string, string][] = [
  ["aws-access-token", "AKIAIOSFODNN7EXAMPLE"],
  ["aws-access-token", "ASIAY34FZKBOKMUTVV7A"],
  ["github-pat", `ghp_${repeat(R, 36)}`],
  ["github-fine-grained-pat", `github_pat_${repeat(R + "_", 82)}`],
  ["gitlab-pat", `glpat-${repeat(R, 20)}`],
  ["slack-token", `xoxb-123456789012-${repeat(R, 24)}`],
  ["stripe-access-token", `sk_live_${repeat(R, 24)}`],
  ["openai-api-key", `sk-proj-${repeat(R + "-", 48)}`],
  ["anthropic-api-key", `sk-ant-api03-${repeat(R, 90)}`],
  ["gcp-api-key", `AIza${repeat(R, 35)}`],
  ["npm-access-token", `npm_${repeat(R, 36)}`],
  ["appliance-api-key", `apk_0123456789abcdef_${repeat(R, 43)}`],
  ["generic-high-entropy", `api_key = '${repeat(R, 24)}'`],
  ["password", "the password is Tr0ub4dor&3"],
  ["password", "pwd=Sup3r$ecret!"],
  ["internal-ip", "10.12.34.56:8080"],
  ["internal-ip", "192.168.1.20"],
  ["internal-ip", "172.20.3.4"],
  ["internal-ip", "169.254.169.254"],
  ["internal-ip", "127.0.0.1"],
  ["internal-ip", "[::1]:8080"],
  ["internal-ip", "fd00:12:34::5"],
  ["internal-ip", "[fe80::1]:5432"],
  ["internal-ip", "0x7f000001"],
  ["internal-ip", "2130706433"],
  ["localhost-url", "http://localhost:3000"],
  ["internal-host", "db-prod-7.corp"],
  ["internal-host", "build.eu.internal"],
  ["email", "bob.smith@example.com"],
  ["payment-card", "4111 1111 1111 1111"],
  ["payment-card", "4111111111111111"],
  ["iban", "GB82 WEST 1234 5698 7654 32"],
  ["phone", "+44 20 7946 0958"],
  ["jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"],
  ["private-key", `-----BEGIN PRIVATE KEY-----\n${repeat(R, 64)}\n${repeat(R, 40)}\n-----END PRIVATE KEY-----`],
];

const FORMS = secretForms();
/** Forms every secret must be caught in, one-shot (the others are checked wherever one-shot catches them). */
const REQUIRED = new Set(["plain", "fullwidth", "look-alike", "zero-width"]);
// The last: glued to a dotted word (a JWT's opening after "." was released while being written, caught in review).
const CONTEXTS = [(s: string) => `Here it is: ${s} and that is all.`, (s: string) => `"${s}"\nnext line`, (s: string) => `v1.${s}.`];

const oneChar = (t: string) => t.split("");
const randomSplit = (seed: number) => (t: string) => {
  const r = rng(seed), out: string[] = [];
  for (let i = 0; i < t.length;) { const n = 1 + Math.floor(r() * 6); out.push(t.slice(i, i + n)); i += n; }
  return out;
};

/**
 * A piece of the secret that must never reach the client, as written: its middle; for an assignment from 60% of the way
 * in, inside its value (its name, `password is`, stays: only the value is redacted).
 */
const core = (written: string, rule: string) => {
  const from = ASSIGNMENTS.includes(rule) ? Math.floor(written.length * 0.6) : Math.floor(written.length / 3);
  return written.slice(from, from + Math.max(4, Math.floor(written.length / 4)));
};
const ASSIGNMENTS = ["password", "generic-high-entropy"];

/** What the client reads, with the redaction markers taken out (a marker names its rule, e.g. "localhost-url"). */

const config = (action: "redact" | "block", internalHosts?: string[]) =>
  parseConfig({ responseScan: { action, pii: !internalHosts, burstChars: 0, ...(internalHosts && { internalHosts }) } }).responseScan;
const redactor = createScanner(config("redact")), blocker = createScanner(config("block"));
// Without the host-name and PII rules nothing holds a run of letters as a possible host label or e-mail local part:
// each rule's own hold must do.
const redactorNoHosts = createScanner(config("redact", [])), blockerNoHosts = createScanner(config("block", []));

describe("every rule's secret, streamed in any chunking, is caught exactly as one-shot", () => {
  for (const [rule, secret] of SECRETS) {
    test(`${rule}: ${secret.slice(0, 24)}…`, () => {
      const missed: string[] = [];
      for (const { form, written, context, text } of writtenCases([[rule, secret]], FORMS, CONTEXTS)) {
        const one = redactor.scan(text);
        if (!one.findings.includes(rule)) { if (REQUIRED.has(form) && context !== 2) missed.push(`${form}: ${JSON.stringify(text)}`); continue; }
        expect(shown(one.text)).not.toContain(core(written, rule));
        for (const chunking of [oneChar, randomSplit(1), randomSplit(7), randomSplit(42)]) for (const scanner of [redactor, redactorNoHosts]) {
          if (scanner === redactorNoHosts && !scanner.scan(text).findings.includes(rule)) continue;
          const f = scanner.filter();
          let out = "";
          for (const piece of chunking(text)) out += f.push(piece);
          out += f.end();
          expect({ form, text, out }).toEqual({ form, text, out: scanner.scan(text).text });
          expect(f.findings).toContain(rule);
        }
        for (const scanner of [blocker, blockerNoHosts]) {
          if (scanner === blockerNoHosts && !redactorNoHosts.scan(text).findings.includes(rule)) continue;
          const b = scanner.filter();
          let sent = "";
          for (const piece of oneChar(text)) sent += b.push(piece);
          sent += b.end();
          expect({ form, text, blocked: b.blocked, leaked: shown(sent).includes(core(written, rule)) }).toEqual({ form, text, blocked: true, leaked: false });
        }
      }
      expect(missed).toEqual([]);
    });
  }
});
