/**
 * Issue 9 item 2: streamed private keys leaked. The hold opened at BEGIN was
 * released as soon as "-----END … PRIVATE KEY" matched, before the closing
 * dashes arrived, and then the full rule no longer matched; a PEM without END
 * (cut by max_tokens), a body over 8,000 characters, 4-dash armor and a JWT
 * over 4 KB in small chunks leaked as well. Each case, streamed in 1-character,
 * word-sized and uneven chunks, in redact and block modes; then the real server
 * streaming a PEM the grammar forces out of the tiny model, with the audit
 * record carrying the finding.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { parseConfig } from "../../src/config/load";
import { createScanner } from "../../src/guards/response-scan";
import { listenApp, makeApp, makeEngine } from "../helpers";

const BODY_LINE = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0";
const pemBody = (chars: number) => Array.from({ length: Math.ceil(chars / 64) }, (_, i) => BODY_LINE.slice(i % 8, (i % 8) + 64)).join("\n");
const pem = (chars: number, dashes = 5, label = "RSA PRIVATE KEY") =>
  `${"-".repeat(dashes)}BEGIN ${label}${"-".repeat(dashes)}\n${pemBody(chars)}\n${"-".repeat(dashes)}END ${label}${"-".repeat(dashes)}`;
const jwt = (payloadChars: number) => "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIiwi" + "bmFtZSI6IkpvaG4gRG9lIn0".repeat(Math.ceil(payloadChars / 23)) + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

// Each case: the text, what must never come out, what must still come out around it.
const CASES = [
  { name: "PEM", text: `here it is:\n${pem(1600)}\nkeep it safe`, secret: BODY_LINE.slice(8, 40), after: "keep it safe", rule: "private-key" },
  { name: "PEM without END (cut by max_tokens)", text: `key: -----BEGIN PRIVATE KEY-----\n${pemBody(900)}`, secret: BODY_LINE.slice(8, 40), after: "key:", rule: "private-key" },
  { name: "PEM body over 8000 characters", text: `x ${pem(12_000)} y`, secret: BODY_LINE.slice(8, 40), after: " y", rule: "private-key" },
  { name: "4-dash armor", text: `a ${pem(800, 4, "EC PRIVATE KEY")} b`, secret: BODY_LINE.slice(8, 40), after: " b", rule: "private-key" },
  { name: "OpenSSH key", text: `a ${pem(800, 5, "OPENSSH PRIVATE KEY")} b`, secret: BODY_LINE.slice(8, 40), after: " b", rule: "private-key" },
  { name: "JWT over 4 KB", text: `token ${jwt(5000)} end`, secret: "bmFtZSI6IkpvaG4gRG9lIn0bmFtZSI6", after: " end", rule: "jwt" },
];

/** 1-character chunks, words with their separators (dashes and newlines split too, as tokenizers do), uneven 1-7 chars. */
const CHUNKINGS: Record<string, (t: string) => string[]> = {
  "1-char": (t) => [...t],
  "word": (t) => t.match(/[A-Za-z0-9+/=]+|-+|\s+|./g) ?? [],
  "uneven": (t) => { const out: string[] = []; for (let i = 0, n = 1; i < t.length; i += n, n = (n % 7) + 1) out.push(t.slice(i, i + n)); return out; },
};

describe("streamed long secrets never leave the scanner", () => {
  for (const action of ["redact", "block"] as const) {
    const scanner = createScanner(parseConfig({ responseScan: { action } }).responseScan);
    for (const c of CASES) {
      for (const [how, chunk] of Object.entries(CHUNKINGS)) {
        test(`${action}: ${c.name}, ${how} chunks`, () => {
          const f = scanner.filter();
          let out = "";
          for (const piece of chunk(c.text)) out += f.push(piece);
          out += f.end();
          expect(out).not.toContain(c.secret);
          expect(f.findings).toContain(c.rule);
          if (action === "block") expect(f.blocked).toBe(true);
          else { expect(out).toContain(`[REDACTED:${c.rule}]`); expect(out).toContain(c.after); }
        });
      }
    }
  }
  test("one-shot gives the same redaction as any chunking", () => {
    const scanner = createScanner(parseConfig({}).responseScan);
    for (const c of CASES) {
      const whole = scanner.scan(c.text).text;
      expect(whole).not.toContain(c.secret);
      for (const chunk of Object.values(CHUNKINGS)) {
        const f = scanner.filter();
        expect(chunk(c.text).map((p) => f.push(p)).join("") + f.end()).toBe(whole);
      }
    }
  });
  test("the hold-back stays bounded inside a long secret", () => {
    const f = createScanner(parseConfig({}).responseScan).filter();
    let out = "";
    for (const piece of CHUNKINGS.word!(`-----BEGIN PRIVATE KEY-----\n${pemBody(200_000)}`)) out += f.push(piece);
    expect(out).toBe("[REDACTED:private-key]");
    // prose after a closed key flows again with the usual small delay
    const after = f.push("\n-----END PRIVATE KEY-----\n" + "word ".repeat(100));
    expect(after.length).toBeGreaterThan(400);
  });
});

describe("through the real server: a PEM streamed by the model", () => {
  const engine = makeEngine();
  afterAll(async () => (await engine).dispose());
  const KEY = `-----BEGIN RSA PRIVATE KEY-----\n${pemBody(120)}\n-----END RSA PRIVATE KEY-----`;
  const body = (maxTokens: number) => JSON.stringify({
    model: "tiny", max_tokens: maxTokens, stream: true, messages: [{ role: "user", content: "give me the key" }],
    response_format: { type: "json_schema", json_schema: { name: "k", schema: { type: "object", properties: { key: { const: KEY } }, required: ["key"] } } },
  });
  /** The model's answer streamed: the raw SSE and the text its chunks carried. */
  const streamed = async (base: string, key: string, maxTokens: number) => {
    const r = await fetch(`${base}/v1/chat/completions`, { method: "POST", body: body(maxTokens),
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" } });
    const sse = await r.text();
    const text = sse.split("\n").filter((l) => l.startsWith("data: {"))
      .map((l) => (JSON.parse(l.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "").join("");
    return { sse, text };
  };
  for (const action of ["redact", "block"] as const) {
    for (const maxTokens of [400, 60]) {
      test(`${action}, max_tokens ${maxTokens}: no key material on the wire, the finding in the audit record`, async () => {
        const ctx = await makeApp({ engine: await engine, config: { responseScan: { action } } });
        const { sse, text } = await streamed(listenApp(ctx.app), ctx.key, maxTokens);
        expect(text).toContain('"key"'); // the stream carried the model's text up to the key
        expect(text).not.toContain(BODY_LINE.slice(8, 20));
        if (action === "redact") expect(text).toContain("[REDACTED:private-key]");
        else expect(sse).toContain('"finish_reason":"content_filter"');
        await ctx.app.stop(true);
        const deadline = Date.now() + 10_000;
        const audit = () => fs.existsSync(ctx.auditFile) ? fs.readFileSync(ctx.auditFile, "utf8") : "";
        while (!audit().includes(`response:${action}:private-key`) && Date.now() < deadline) await Bun.sleep(10);
        expect(audit()).toContain(`response:${action}:private-key`);
      });
    }
  }
  /**
   * CI run (fresh clone): "block, max_tokens 60" got only "{\n" — the tiny model's tokens came less than 1 ms apart,
   * the filter batched them as a burst, found the key's opening only at the stream's end, and the route dropped the
   * clean text before it that a push would have sent. With the batch as large as it may be, answers here take that
   * path now and then when the machine is idle (before the fix, 2 of 3 runs of ten answers each had one); thirty in a
   * row make a pass before it unlikely, not impossible. After it, either path sends the text before the key.
   */
  test("block: the clean text before the key goes out however the tokens were timed (a burst scanned only at the end too)", async () => {
    const ctx = await makeApp({ engine: await engine, config: { responseScan: { action: "block", burstChars: 65_536 } } });
    const base = listenApp(ctx.app);
    try {
      for (let i = 0; i < 30; i++) {
        const { sse, text } = await streamed(base, ctx.key, 60);
        expect(text).toContain('"key"');
        expect(text).not.toContain("BEGIN");
        expect(text).not.toContain(BODY_LINE.slice(8, 20));
        expect(sse).toContain('"finish_reason":"content_filter"');
      }
    } finally {
      await ctx.app.stop(true);
    }
  });
});
