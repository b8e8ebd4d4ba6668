/** Helpers shared by the streamed-scanner tests (request-scanner-hold, scanner-stream-attack, its leaks file, scan-incremental, scan-hold-fuzz). */
import { LOOKALIKES } from "../../src/guards/normalise";
import type { Scanner } from "../../src/guards/response-scan";

/** A seeded PRNG, so a failing split or fuzz case can be reproduced from its seed. */
export function rng(seed: number) {
  return () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
}

/** What of a scanner's output a reader sees besides the redaction markers. */
export const shown = (out: string) => out.replace(/\[REDACTED:[a-z-]+\]/g, "");

/** `s` repeated and cut to exactly `n` characters. */
export const repeat = (s: string, n: number) => s.repeat(Math.ceil(n / s.length)).slice(0, n);

/** ASCII letter → a look-alike the scanner's view reads as that letter (Cyrillic/Greek, normalise.ts). */
export const LIKE: Record<string, string> = {};
for (const [like, ascii] of Object.entries(LOOKALIKES)) if (/^[A-Za-z]$/.test(ascii)) LIKE[ascii] ??= like;

/** Invisible characters the view drops (zero-width space, non-joiner, word joiner, soft hyphen). */
const INVISIBLES = ["\u200b", "\u200c", "\u2060", "\u00ad"];

/** A way of writing a secret; undefined where the form does not apply to it. */
export type Form = (secret: string) => string | undefined;

/**
 * The ways a secret is written that the scanner must read as the secret: plain, fullwidth, in look-alike letters,
 * with invisible characters inside, spaced out one character at a time, and short base64/base64url/hex encodings;
 * and inside a JSON string as a JSON answer writes it: escaped, spaced out with `\t`/`\n` escapes, or as `\uXXXX` escapes.
 * Without `r` every character is changed (every other one for look-alikes, a zero-width space between all);
 * with `r` which characters are changed, and by which invisible character, is drawn each time.
 */
export function secretForms(r?: () => number): Record<string, Form> {
  return {
    plain: (s) => s,
    fullwidth: (s) => [...s].map((c) => (c >= "!" && c <= "~" && (r ? r() < 0.6 : true) ? String.fromCharCode(c.charCodeAt(0) + 0xfee0) : c)).join(""),
    "look-alike": (s) => [...s].map((c, i) => ((r ? r() < 0.5 : i % 2 === 0) ? LIKE[c] ?? c : c)).join(""),
    "zero-width": (s) => (r ? [...s].map((c) => c + (r() < 0.4 ? INVISIBLES[Math.floor(r() * INVISIBLES.length)] : "")).join("") : [...s].join("\u200b")),
    "spaced out": (s) => (/^[A-Za-z0-9_-]+$/.test(s) ? [...s].join(" ") : undefined),
    base64: (s) => (s.length <= 150 ? Buffer.from(s).toString("base64") : undefined),
    base64url: (s) => (s.length <= 150 ? Buffer.from(s).toString("base64url") : undefined),
    hex: (s) => (s.length <= 120 ? Buffer.from(s).toString("hex") : undefined),
    "JSON string": (s) => JSON.stringify(s).slice(1, -1),
    "JSON, escape-spaced": (s) => (/^[A-Za-z0-9_-]+$/.test(s) ? [...s].join(r && r() < 0.5 ? "\\n" : "\\t") : undefined),
    "JSON, \\u escapes": (s) => [...s].map((c) => ((r ? r() < 0.5 : true) && c.charCodeAt(0) < 0x80 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}` : c)).join(""),
  };
}

/** One secret as written in one form and set in one context. */
export interface WrittenCase { rule: string; form: string; written: string; context: number; text: string }

/** Every secret × every form that applies × every context, in that order. */
export function* writtenCases(secrets: [string, string][], forms: Record<string, Form>, contexts: ((s: string) => string)[]): Generator<WrittenCase> {
  for (const [rule, secret] of secrets) {
    for (const [form, make] of Object.entries(forms)) {
      const written = make(secret);
      if (written === undefined) continue;
      for (let context = 0; context < contexts.length; context++) yield { rule, form, written, context, text: contexts[context]!(written) };
    }
  }
}

/** A stream through a fresh filter of `s`, piece by piece: the text sent, the sorted findings, whether it blocked. */
export function streamed(s: Scanner, pieces: string[]) {
  const f = s.filter();
  let out = "";
  for (const p of pieces) out += f.push(p);
  out += f.end();
  return { text: out, findings: [...f.findings].sort(), blocked: f.blocked };
}
