/**
 * Response scanner: finds secrets and sensitive data in generated text and
 * redacts (`[REDACTED:<rule>]`) or blocks them. On streams it holds back the
 * tail that could still be the start of a secret — the last few
 * whitespace-separated words (as many as the longest rule can span), never
 * more than the longest pattern's length — so a secret split across chunks is
 * still caught while ordinary prose flows with a delay of a word or three.
 * PEM private keys and JWTs are too long to hold: from their opening on, text
 * is dropped until they end (long-secrets.ts).
 */
import type { Config } from "../config/schema";
import { LONG_SECRETS, PEM_END, PEM_END_TAIL, isJwtChar, type LongSecret } from "./long-secrets";
import { SECRET_RULES, internalHostRule, type SecretRule } from "./rules/secrets";
import { scanView, toOriginal } from "./scan-view";

/** Chunks closer together than this are a burst, scanned in batches of up to BATCH_CHARS. */
const BURST_MS = 1;
const BATCH_CHARS = 1024;

/** A base64/base64url run or an even run of hex digits, short enough to be one secret (24–256 chars). */
// Greedy from the leftmost position: each match is one whole run (linear, no backtracking); runs longer
// than one short secret's encoding are skipped below.
const ENCODED = /[A-Za-z0-9+/_-]{24,}={0,2}/g;
const MAX_ENCODED = 258;
/** Its alphabet: a match right after one of these is the tail of a longer run, not a run of its own. */
const isEncodedChar = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 43 || c === 47 || c === 95 || c === 45 || c === 61;

/** The decoded text of an encoded run, when it decodes to printable ASCII; undefined otherwise. */
function decode(run: string): string | undefined {
  const bytes = /^(?:[0-9a-f]{2})+$/i.test(run) ? Buffer.from(run, "hex") : Buffer.from(run, "base64");
  if (bytes.length < 16) return undefined;
  for (const b of bytes) if (b < 0x20 ? b !== 9 && b !== 10 && b !== 13 : b > 0x7e) return undefined;
  return bytes.toString("latin1");
}

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
  /**
   * Characters of pushed text whose output has not been returned yet (held back; always the tail of
   * what was pushed), so a caller can tell which generated text each returned piece stands for.
   */
  readonly pending: number;
}

export const passthrough = (): TextFilter => ({ push: (t) => t, end: () => "", blocked: false, findings: [], pending: 0 });

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
  // PEM keys and JWTs are found by their opening (long-secrets.ts); the rest by whole-match rules.
  const spanRules = rules.filter((r) => !LONG_SECRETS.some((l) => l.id === r.id));
  const window = Math.max(...spanRules.map((r) => r.maxLength)) + 8;
  const block = cfg.action === "block";
  const words = Math.max(...spanRules.map((r) => r.maxWords ?? 1));
  // One case-insensitive pass over all rules first: most text matches none, and then nothing else runs.

  // Short encoded forms of a secret (base64, base64url, hex): decoded and scanned with the secret rules.
  const secretRules = spanRules.filter((r) => r.group === "secret");
  const anyRule = new RegExp([...spanRules.map((r) => `(?:${r.pattern.source})`), "[A-Za-z0-9+/_-]{24}"].join("|"), "i");

  /** Rule matches in `text` (already a view), earlier rules first, non-overlapping. */
  function match(text: string, use: SecretRule[], found: Span[]) {
    for (const rule of use) {
      rule.pattern.lastIndex = 0;
      for (const m of text.matchAll(rule.pattern)) {
        const start = m.index!, end = start + m[0].length;
        if (rule.validate && !rule.validate(m[0])) continue;
        if (found.some((f) => start < f.end && end > f.start)) continue;
        found.push({ start, end, rule: rule.id });
      }
    }
  }

  /** Non-overlapping findings in original offsets, in order. Rules run on the reader's view (scan-view.ts). */
  function spans(original: string): Span[] {
    const view = scanView(original);
    const text = view.text;
    const found: Span[] = [];
    if (text.length < 4096 && !anyRule.test(text)) return found; // long texts nearly always hit: skip the extra pass
    match(text, spanRules, found);
    ENCODED.lastIndex = 0;
    for (const m of text.matchAll(ENCODED)) {
      const start = m.index!, end = start + m[0].length;
      if (m[0].length > MAX_ENCODED || (start > 0 && isEncodedChar(text.charCodeAt(start - 1)))) continue;
      if (found.some((f) => start < f.end && end > f.start)) continue;
      const decoded = decode(m[0]);
      if (!decoded) continue;
      const inner: Span[] = [];
      match(decoded, secretRules, inner);
      if (inner.length) found.push({ start, end, rule: inner[0]!.rule });
    }
    for (const f of found) [f.start, f.end] = toOriginal(view, f.start, f.end);
    return found.sort((a, b) => a.start - b.start);
  }

  function redact(text: string, found: Span[]): string {
    let out = "", at = 0;
    for (const f of found) { out += text.slice(at, f.start) + `[REDACTED:${f.rule}]`; at = f.end; }
    return out + text.slice(at);
  }

  /** The earliest complete opening of a long secret in `text`. */
  function firstOpening(text: string): { at: number; end: number; secret: LongSecret } | undefined {
    let best: { at: number; end: number; secret: LongSecret } | undefined;
    for (const secret of LONG_SECRETS) {
      if (!text.includes(secret.hint)) continue;
      const m = secret.open.exec(text);
      if (m && (!best || m.index < best.at)) best = { at: m.index, end: m.index + m[0].length, secret };
    }
    return best;
  }

  /** Where an opening that is still being written starts (text.length if none). */
  function partialOpening(text: string): number {
    let at = text.length;
    for (const secret of LONG_SECRETS) at = Math.min(at, secret.partial(text));
    return at;
  }

  function scan(text: string) {
    const f = filter();
    const out = f.push(text) + f.end();
    return { text: out, findings: [...f.findings] };
  }

  function filter(): TextFilter {
    let held = "";
    /** Inside a long secret: everything is dropped until it ends. */
    let inside: LongSecret["id"] | undefined;
    const state = { blocked: false, findings: [] as string[] };
    const note = (rule: string) => {
      if (!state.findings.includes(rule)) state.findings.push(rule);
      if (block) state.blocked = true;
    };
    /** Scans and redacts `text` as final: nothing after it can change it. */
    const settle = (text: string) => {
      const found = spans(text);
      for (const f of found) note(f.rule);
      return redact(text, found);
    };

    /** Consumes `text`; returns what may be sent now. */
    function feed(text: string, final: boolean): string {
      let out = "";
      while (!state.blocked) {
        if (inside === "private-key") {
          held += text; text = "";
          const end = PEM_END.exec(final ? held + "\n" : held);
          if (!end) { if (!final) held = held.slice(-PEM_END_TAIL); else held = ""; return out; }
          text = held.slice(end.index + end[0].length); held = ""; inside = undefined;
          continue;
        }
        if (inside === "jwt") {
          let i = 0;
          while (i < text.length && isJwtChar(text.charCodeAt(i))) i++;
          if (i === text.length) return out;
          text = text.slice(i); inside = undefined;
          continue;
        }
        held += text; text = "";
        const open = firstOpening(held);
        if (open) {
          const before = settle(held.slice(0, open.at));
          if (state.blocked) break; // a finding before it already blocks: nothing of this
          out += before;
          note(open.secret.id);
          if (state.blocked) { held = ""; return out; } // block: the clean text before the key, then nothing
          out += `[REDACTED:${open.secret.id}]`;
          inside = open.secret.id;
          text = held.slice(open.end); held = "";
          continue;
        }
        if (final) { out += settle(held); held = ""; return out; }
        // Final: everything before the last `words` words, and in any case everything but the last `window`
        // chars (a secret starting earlier than either is whole by now) — but never an opening being written.
        let cut = Math.min(Math.max(held.length - window, Math.min(tailStart(held, words), spacedTailStart(held))), partialOpening(held));
        if (cut <= 0) return out;
        const found = spans(held);
        for (const f of found) if (f.start < cut && f.end > cut) cut = f.start; // never split a finding
        const emitted = found.filter((f) => f.end <= cut);
        for (const f of emitted) note(f.rule);
        out += redact(held.slice(0, cut), emitted);
        held = held.slice(cut);
        return out;
      }
      held = "";
      return ""; // blocked: the caller ends the answer with content_filter
    }

    // Fed faster than a model can generate (a replay, a benchmark), text is scanned in batches instead of
    // per chunk; fed at generation speed, every chunk is scanned at once, so nothing waits for a batch.
    let lastPush = -Infinity, batched = 0;
    return {
      get blocked() { return state.blocked; },
      get findings() { return state.findings; },
      get pending() { return held.length; },
      push(text) {
        if (state.blocked) return "";
        const now = performance.now();
        const burst = now - lastPush < BURST_MS;
        lastPush = now;
        if (burst && !inside && batched + text.length < BATCH_CHARS) { held += text; batched += text.length; return ""; }
        batched = 0;
        return feed(text, false);
      },
      end: () => (state.blocked ? "" : feed("", true)),
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

/** Where a trailing run of single characters separated by spaces ("A K I A …", a secret spelled out) starts. */
function spacedTailStart(text: string): number {
  let i = text.length, start = text.length, n = 0;
  if (i > 0 && isSpace(text.charCodeAt(i - 1))) i--;
  while (i > 0 && isAlnum(text.charCodeAt(i - 1)) && (i === 1 || !isAlnum(text.charCodeAt(i - 2)))) {
    n++;
    start = i - 1;
    if (i >= 2 && isSpace(text.charCodeAt(i - 2))) i -= 2;
    else break;
  }
  return n >= 2 ? start : text.length;
}

const isAlnum = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** ASCII and common Unicode whitespace, as \s would match, without a regex per character. */
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13) || c === 160 || c === 0x2028 || c === 0x2029 || c === 0x3000 || (c >= 0x2000 && c <= 0x200a) || c === 0x1680 || c === 0x202f || c === 0x205f || c === 0xfeff;

interface Span { start: number; end: number; rule: string }
