/**
 * Response scanner: finds secrets and sensitive data in generated text and
 * redacts (`[REDACTED:<rule>]`) or blocks them. On streams it holds back the
 * tail that could still be the start of a secret — the last few
 * whitespace-separated words (as many as the longest rule can span), never
 * more than the longest pattern's length — so a secret split across chunks is
 * still caught while ordinary prose flows with a delay of a word or three.
 * A PEM private key (long) is held from its BEGIN line until its END line.
 */
import type { Config } from "../config/schema";
import { SECRET_RULES, internalHostRule, type SecretRule } from "./rules/secrets";

/** Streaming text filter applied to generated text before it reaches the client. */
export interface TextFilter {
  /** Feed generated text; returns what may be sent now. */
  push(text: string): string;
  /** End of generation: returns whatever was held back. */
  end(): string;
  /** Set once a rule with action "block" fired: the caller stops generating. */
  readonly blocked: boolean;
  /** Rule ids that fired. */
  readonly findings: string[];
}

export const passthrough = (): TextFilter => ({ push: (t) => t, end: () => "", blocked: false, findings: [] });

const PEM_BEGIN = /-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY/;
const PEM_END = /-----END[ A-Z0-9_-]{0,100}PRIVATE KEY/;
/** A JWT-shaped run still growing at the end of the held text. */
const JWT_OPEN = /\bey[A-Za-z0-9_-]{17,}\.[A-Za-z0-9_.-]*$/;

export interface Scanner {
  rules: SecretRule[];
  window: number;
  /** One-shot scan of a whole text. */
  scan(text: string): { text: string; findings: string[] };
  filter(): TextFilter;
}

export function createScanner(cfg: Config["responseScan"]): Scanner {
  const rules = [...SECRET_RULES, internalHostRule(cfg.internalHosts)]
    .filter((r): r is SecretRule => !!r && (r.group !== "pii" || cfg.pii));
  // PEM keys and JWTs are long: they are held while open instead of sizing the window.
  const window = Math.max(...rules.filter((r) => r.id !== "private-key" && r.id !== "jwt").map((r) => r.maxLength)) + 8;
  const block = cfg.action === "block";
  const words = Math.max(...rules.map((r) => r.maxWords ?? 1));
  // One case-insensitive pass over all rules first: most text matches none, and then nothing else runs.
  const anyRule = new RegExp(rules.map((r) => `(?:${r.pattern.source})`).join("|"), "i");

  /** Non-overlapping findings, earlier rules first (the list is ordered most specific first). */
  function spans(text: string): Span[] {
    const found: Span[] = [];
    if (text.length < 4096 && !anyRule.test(text)) return found; // long texts nearly always hit: skip the extra pass
    for (const rule of rules) {
      rule.pattern.lastIndex = 0;
      for (const m of text.matchAll(rule.pattern)) {
        const start = m.index!, end = start + m[0].length;
        if (rule.validate && !rule.validate(m[0])) continue;
        if (found.some((f) => start < f.end && end > f.start)) continue;
        found.push({ start, end, rule: rule.id });
      }
    }
    return found.sort((a, b) => a.start - b.start);
  }

  function redact(text: string, found: Span[]): string {
    let out = "", at = 0;
    for (const f of found) { out += text.slice(at, f.start) + `[REDACTED:${f.rule}]`; at = f.end; }
    return out + text.slice(at);
  }

  function scan(text: string) {
    const found = spans(text);
    return { text: redact(text, found), findings: [...new Set(found.map((f) => f.rule))] };
  }

  function filter(): TextFilter {
    let held = "";
    const state = { blocked: false, findings: [] as string[] };
    const record = (found: Span[]) => {
      for (const f of found) if (!state.findings.includes(f.rule)) state.findings.push(f.rule);
      if (found.length && block) state.blocked = true;
    };
    return {
      get blocked() { return state.blocked; },
      get findings() { return state.findings; },
      push(text) {
        if (state.blocked) return "";
        held += text;
        // Final: everything before the last `words` words, and in any case everything but the last `window`
        // chars (a secret starting earlier than either is whole by now).
        let cut = Math.max(held.length - window, tailStart(held, words));
        const pem = held.search(PEM_BEGIN);
        if (pem >= 0 && pem < cut && held.length - pem < 8192 && !PEM_END.test(held.slice(pem))) cut = pem;
        const jwt = JWT_OPEN.exec(held);
        if (jwt && jwt.index < cut && held.length - jwt.index < 4096) cut = jwt.index;
        if (cut <= 0) return "";
        const found = spans(held);
        for (const f of found) if (f.start < cut && f.end > cut) cut = f.start; // never split a finding
        const emitted = found.filter((f) => f.end <= cut);
        record(emitted);
        if (state.blocked) { held = ""; return ""; }
        const out = redact(held.slice(0, cut), emitted);
        held = held.slice(cut);
        return out;
      },
      end() {
        if (state.blocked) return "";
        const found = spans(held);
        record(found);
        const out = state.blocked ? "" : redact(held, found);
        held = "";
        return out;
      },
    };
  }

  return { rules, window, scan, filter };
}

/** Where the last `n` whitespace-separated words start. */
function tailStart(text: string, n: number): number {
  let i = text.length;
  for (let w = 0; w < n && i > 0; w++) {
    while (i > 0 && isSpace(text.charCodeAt(i - 1))) i--;
    while (i > 0 && !isSpace(text.charCodeAt(i - 1))) i--;
  }
  return i;
}

/** ASCII and common Unicode whitespace, as \s would match, without a regex per character. */
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13) || c === 160 || c === 0x2028 || c === 0x2029 || c === 0x3000 || (c >= 0x2000 && c <= 0x200a) || c === 0x1680 || c === 0x202f || c === 0x205f || c === 0xfeff;

interface Span { start: number; end: number; rule: string }
