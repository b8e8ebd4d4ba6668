/**
 * A rule's declared maxLength sizes the stream's hold-back window (response-scan.ts) and an anchored rule's search
 * window (rule-match.ts): declared below the longest match the regex can make, a stream could release the start of
 * a match before its end arrived (email was 254 for a regex whose matches reach 270, iban 42 for 43, phone 24 for
 * 31). Every bounded rule's declaration is its regex's longest match, computed from the pattern (regex-prefix.ts);
 * the unbounded ones (a `\s*`, a `\d+`, repeated host labels) are named here, so a new one is a decision. The
 * window also holds the longest encoded run (encoded.ts) whole.
 */
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner } from "../../src/guards/response-scan";
import { analysePattern } from "../../src/guards/regex-prefix";
import { SECRET_RULES, internalHostRule } from "../../src/guards/rules/secrets";

const UNBOUNDED = ["slack-token", "jwt", "password", "internal-ip", "internal-host"];

test("every bounded rule declares exactly its pattern's longest match", () => {
  const rules = [...SECRET_RULES, internalHostRule([".internal", ".local", ".lan", ".corp", "x.y.example"])!];
  const got = rules.map((r) => {
    const longest = analysePattern(r.pattern)!.longest;
    return { id: r.id, maxLength: longest === Infinity ? (UNBOUNDED.includes(r.id) ? "unbounded" : "unbounded, not named") : r.maxLength };
  });
  const want = rules.map((r) => {
    const longest = analysePattern(r.pattern)!.longest;
    return { id: r.id, maxLength: longest === Infinity ? "unbounded" : longest };
  });
  expect(got).toEqual(want);
});

test("the stream's window holds the longest encoded run whole, whichever rules are on", () => {
  const R = "q8Zr2LxP0vN7wKcT5yHbM3sDj6Fg9UeYa1Wi4Ot";
  const token = "xoxb-123456789012-" + R.repeat(3).slice(0, 100), text = `Here: ${Buffer.from(token).toString("hex")} end`;
  expect(text.length).toBe(6 + 236 + 4);
  for (const responseScan of [{ internalHosts: [] }, { internalHosts: [], pii: true }, {}]) {
    const scanner = createScanner(parseConfig({ responseScan: { ...responseScan, burstChars: 0 } }).responseScan);
    expect(scanner.window).toBeGreaterThanOrEqual(258);
    const f = scanner.filter();
    let out = "";
    for (const ch of text) out += f.push(ch);
    // Before: with no internal-host rule the window was 208 and the first 30 hex characters went out.
    expect({ responseScan, out: out + f.end() }).toEqual({ responseScan, out: "Here: [REDACTED:slack-token] end" });
  }
});
