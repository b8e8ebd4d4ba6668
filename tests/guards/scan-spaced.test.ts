/**
 * A secret spaced out one character at a time was joined (and redacted) only when every gap was one ASCII space or
 * tab and every character an ASCII letter or digit: spaced with a no-break, thin or ideographic space, two spaces,
 * a newline, or written in fullwidth letters, it reached the client, one-shot and streamed; a token with `_` or `-`
 * in it (ghp_…, glpat-…) was never joined at all. Runs are now found on the reader's view (scan-view.ts): any gap of
 * one to four whitespace characters as read, letters however written, `_` and `-` standing alone included. Each
 * spacing one-shot, streamed cut in two at every position and one character per push; prose that only looks spaced
 * comes out untouched.
 */
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner } from "../../src/guards/response-scan";
import { LIKE, streamed } from "../security/scan-helpers";

const scanner = createScanner(parseConfig({ responseScan: { burstChars: 0 } }).responseScan);
const noHost = createScanner(parseConfig({ responseScan: { burstChars: 0, internalHosts: [] } }).responseScan);

const SECRETS: [string, string][] = [
  ["aws-access-token", "AKIAIOSFODNN7EXAMPLE"],
  ["github-pat", "ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"],
  ["gitlab-pat", "glpat-Ab3De6Gh9Jk2Mn5Pq8St"],
];
const GAPS: Record<string, string> = {
  "one space": " ", tab: "\t", "no-break space": "\u00a0", "thin space": "\u2009", "ideographic space": "\u3000",
  "en quad": "\u2000", "narrow no-break space": "\u202f", "two spaces": "  ", "four spaces": "    ", newline: "\n",
  CRLF: "\r\n", "blank line": "\n\n", "space and tab": " \t", "no-break space and a zero-width space": "\u00a0\u200b",
};
const fullwidth = (s: string) => [...s].map((c) => (c >= "!" && c <= "~" ? String.fromCharCode(c.charCodeAt(0) + 0xfee0) : c)).join("");
const lookalike = (s: string) => [...s].map((c) => LIKE[c] ?? c).join("");
const CONTEXTS = [(s: string) => `Here it is: ${s} and that is all.`, (s: string) => s, (s: string) => `数据：${s}。好`];

/** [label, text, the text as it must come out] */
function* cases(): Generator<[string, string, string]> {
  for (const [rule, secret] of SECRETS) {
    const forms: Record<string, string> = {};
    for (const [name, gap] of Object.entries(GAPS)) forms[name] = [...secret].join(gap);
    forms["fullwidth, one space"] = [...fullwidth(secret)].join(" ");
    forms["fullwidth, ideographic space"] = [...fullwidth(secret)].join("\u3000");
    forms["look-alike letters, no-break space"] = [...lookalike(secret)].join("\u00a0");
    for (const [form, written] of Object.entries(forms)) {
      for (const context of CONTEXTS) yield [`${rule} ${form}`, context(written), context(`[REDACTED:${rule}]`)];
    }
  }
}

test("a secret spaced out with any short whitespace gap, or in fullwidth or look-alike letters, is redacted one-shot", () => {
  const leaks: string[] = [];
  let n = 0;
  for (const [label, text, want] of cases()) {
    n++;
    for (const s of [scanner, noHost]) if (s.scan(text).text !== want) leaks.push(`${label}: ${JSON.stringify(s.scan(text).text)}`);
  }
  expect(n).toBeGreaterThan(100);
  expect(leaks.slice(0, 8)).toEqual([]);
});

test("streamed, cut in two at every position and one character per push: the same as one-shot", () => {
  const diffs: string[] = [];
  for (const [label, text, want] of cases()) {
    for (const s of [scanner, noHost]) {
      const splits = [[...text], ...Array.from({ length: text.length + 1 }, (_, cut) => [text.slice(0, cut), text.slice(cut)])];
      for (const pieces of splits) {
        const got = streamed(s, pieces);
        if (got.text !== want) { diffs.push(`${label} in ${pieces.length} pieces: ${JSON.stringify(got.text)}`); break; }
      }
    }
  }
  expect(diffs.slice(0, 8)).toEqual([]);
});

test("prose that only looks spaced out is not redacted, one-shot or streamed", () => {
  const PROSE = [
    "Plan A  or  plan B, said I.  Then we left.",
    "x = a - b - c - d - e - f - g - h; y = 2",
    "The identity matrix:\n1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n",
    "Options:\n- a\n- b\n- c\n- d\n- e\n",
    "数 据 模 型 服 务 安 全\u3000完 成",
    "S E C R E T S  are  spelled  S\u00a0E\u00a0C\u00a0R\u00a0E\u00a0T\u00a0S here.",
    "Grades: A B C D E F G H I J K L, in that order.",
    "name    value\nx       1\ny       2\n",
    "r o t 1 3 of h e l l o is u r y y b",
    "ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ ａ ｂ ｃ ｄ ｅ ｆ ｇ ｈ",
  ];
  const changed: string[] = [];
  for (const text of PROSE) {
    for (const s of [scanner, noHost]) {
      const one = s.scan(text);
      if (one.text !== text || one.findings.length) changed.push(`one-shot ${JSON.stringify(text)}: ${JSON.stringify(one)}`);
      const got = streamed(s, [...text]);
      if (got.text !== text) changed.push(`streamed ${JSON.stringify(text)}: ${JSON.stringify(got.text)}`);
    }
  }
  expect(changed).toEqual([]);
});

test("the bound: a gap of five whitespace characters or more ends a run (a letter table is not one word)", () => {
  const text = [..."AKIAIOSFODNN7EXAMPLE"].join("     ");
  expect(scanner.scan(text).text).toBe(text);
  expect(streamed(scanner, [...text]).text).toBe(text);
});

// Red-team run (stop 74): a one-character word beside a spaced-out secret joined its run ("it is a A K I A …" read
// `aAKIA…`, "… d E 1" read `…dE1`), and the token rules, which want a word boundary at each end, no longer matched:
// the key went out as written. The article "a" or the pronoun "I" was enough.
test("a spaced-out secret with a one-character word beside it is redacted, one-shot and streamed", () => {
  const leaks: string[] = [];
  for (const [rule, secret] of SECRETS) {
    const spaced = [...secret].join(" ");
    // second attack on the fix: four one-letter words, one doubled space, a zero-width character in a gap
    const uneven = [...secret].map((c, i) => (i === 3 ? `${c} ` : c)).join(" "), zw = [...secret].map((c, i) => (i === 1 ? `${c}\u200b` : c)).join(" ");
    for (const [written, context] of [[spaced, (s: string) => `it is a ${s}`], [spaced, (s: string) => `I ${s}`], [spaced, (s: string) => `${s} 1`],
      [spaced, (s: string) => `x ${s} y and more`], [spaced, (s: string) => `a b ${s} c d`], [spaced, (s: string) => `a b c d ${s} 1 2 3 4`],
      [uneven, (s: string) => `Here is a ${s} ok`], [zw, (s: string) => `x ${s}`]] as const) {
      const text = context(written), want = context(`[REDACTED:${rule}]`);
      for (const s of [scanner, noHost]) {
        if (s.scan(text).text !== want) leaks.push(`one-shot ${JSON.stringify(text)}: ${JSON.stringify(s.scan(text).text)}`);
        for (const pieces of [[...text], [text.slice(0, 9), text.slice(9)]]) {
          const got = streamed(s, pieces).text;
          if (got !== want) leaks.push(`streamed in ${pieces.length} ${JSON.stringify(text)}: ${JSON.stringify(got)}`);
        }
      }
    }
  }
  expect(leaks.slice(0, 6)).toEqual([]);
});
