/**
 * Response scanner: finds secrets and sensitive data in generated text and
 * redacts (`[REDACTED:<rule>]`) or blocks them. On streams it holds back only
 * the tail that could still be (part of) a finding — from the earliest position
 * where some rule could still match if more text came (live-tail.ts), never
 * more than the longest pattern's length in reader characters nor HOLD_CAP
 * code units (an opening still being written past that fails closed: it is
 * treated as the secret) — so a secret split across chunks is
 * still caught while text no rule can extend into a match flows at once.
 * PEM private keys and JWTs are too long to hold: from their opening on, text
 * is dropped until they end (long-secrets.ts).
 */
import type { Config } from "../config/schema";
import { ENCODED_MAX, decode, encodedRuns } from "./encoded";
import { OPENING_HOLD_MAX, LONG_SECRETS, PEM_END, PEM_END_TAIL, isBase64Char, isJwtChar, type LongSecret } from "./long-secrets";
import { LiveMemo, liveTail } from "./live-tail";
import { isHigh } from "./regex-chars";
import { allMatches, anchoredMatches, merge, overlaps, type Span } from "./rule-match";
import { JSON_ANSWER_RULES, SECRET_RULES, internalHostRule, type SecretRule } from "./rules/secrets";
import { at, extendView, pendingEscape, readsAs, scanView, toOriginal, type ScanView } from "./scan-view";

/**
 * Most code units held for a span rule's match still being written: a secret whose parts are spread over more
 * than this (thousands of invisible characters between them) is released in pieces and not recognised.
 */
const HOLD_CAP = 8192;

/** Chunks closer together than this are a burst (a replay, a cached answer), scanned in batches of burstChars. */
const BURST_MS = 1;
/** Longest joined spaced-out run the token rules read without their boundaries (the longest such token is 171). */
const RUN_SCAN_MAX = 512;
/**
 * Released characters kept as context for the next scan: lookbehinds and \b at the held text's start read them,
 * and a run of non-space characters that began before the cut (a long base64 blob, a host label) is seen from its
 * real start — cut short, a run would be read from a wrong offset (another base64 alignment, a label start).
 * 32: the longest lookbehind before a match's start is the JSON-number one of rules/secrets.ts (`":`, 24 spaces, `-`).
 */
const CONTEXT = 32, CONTEXT_RUN = 300;
/** The context to keep from `text` (context + what was just released). */
function contextOf(text: string): string {
  let s = Math.max(0, text.length - CONTEXT);
  while (s > 0 && text.length - s < CONTEXT_RUN && inRun(text.charCodeAt(s - 1))) s--;
  return text.slice(s);
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
  /** One-shot: a whole text at once, final (no hold-back analysis); the filter is done after it. */
  whole(text: string): string;
}

export const passthrough = (): TextFilter => ({ push: (t) => t, end: () => "", whole: (t) => t, blocked: false, findings: [], pending: 0 });

export interface Scanner {
  rules: SecretRule[];
  window: number;
  /** Most characters a stream's filter holds back at once (plus the chunk being pushed). */
  holdBound: number;
  /** One-shot scan of a whole text; `json`: a JSON answer (JSON_ANSWER_RULES). */
  scan(text: string, json?: boolean): { text: string; findings: string[] };
  /**
   * A stream's filter; `inside`: the text starts inside that long secret (a key the prompt opened: opensKey); `json`:
   * the text is a JSON answer (a response_format, a call's arguments), where a number is not read as an address.
   */
  filter(inside?: "private-key", json?: boolean): TextFilter;
  /** Whether `text` opens a PEM private key (its BEGIN line, as the scanner reads it) that it does not close. */
  opensKey(text: string): boolean;
  /** Builds the hold-back analysis now instead of at the first stream that needs it (serve: after ready). */
  prepare(): void;
}

export function createScanner(cfg: Config["responseScan"]): Scanner {
  const rules = [...SECRET_RULES, internalHostRule(cfg.internalHosts)]
    .filter((r): r is SecretRule => !!r && (r.group !== "pii" || cfg.pii));
  // PEM keys and JWTs are found by their opening (long-secrets.ts); the rest by whole-match rules.
  const spanRules = rules.filter((r) => !LONG_SECRETS.some((l) => l.id === r.id));
  const jsonSpanRules = spanRules.map((r) => JSON_ANSWER_RULES.get(r) ?? r);
  // Long enough for the longest match and for the longest encoded run (a hex-encoded token is twice its length;
  // sized by the rules alone, with no internal-host rule, a 236-character hex token was released in part).
  const window = Math.max(ENCODED_MAX, ...spanRules.map((r) => r.maxLength)) + 8;
  const block = cfg.action === "block";
  // The analysis of every rule's pattern (regex-prefix.ts) takes 5-10 ms: built when a stream first holds text back,
  // or by prepare() once serve is listening, not on the start path (cold start to /health, scripts/bench-cold.ts).
  const built: { prose?: ReturnType<typeof liveTail>; json?: ReturnType<typeof liveTail> } = {};
  const holdFrom = (json: boolean) => json ? (built.json ??= liveTail(jsonSpanRules, window)) : (built.prose ??= liveTail(spanRules, window));
  const burstChars = cfg.burstChars;
  // A split finding is held whole (up to window reader characters, HOLD_CAP code units), an opening being written
  // up to OPENING_HOLD_MAX, a burst batch.
  const holdBound = Math.max(HOLD_CAP, OPENING_HOLD_MAX) + burstChars;

  // Short encoded forms of a secret or an internal address (base64, base64url, hex): decoded and scanned with those
  // rules (PII is matched as written only).
  const decodedRules = spanRules.filter((r) => r.group !== "pii");
  /**
   * The token rules without their word boundaries, for what a spaced-out run reads as: a one-character word beside the
   * secret joins its run ("it is a A K I A …" reads `aAKIA…`, "… E 1" reads `…E1`), and the rules, which want a
   * boundary at each end, passed the key (red-team run). A token found anywhere in a run is taken: limiting how much of
   * the run may stand around it, or asking its gaps to be even, let a fourth one-letter word, one doubled space or a
   * zero-width character through again (second attack on the fix); letter-spaced capitals that spell such a token
   * ("A S I A   P A C I F I C …" for an AWS key) are redacted too, the price of that (README).
   */
  const END = /(?:\\b|\(\?:\\b\|\(\?!\[\\w-\]\)\))$/; // a token's end: `\b`, or `(?:\b|(?![\w-]))`
  const unbounded = (use: SecretRule[]) => use.filter((r) => r.group === "secret" && (/^\\b/.test(r.pattern.source) || END.test(r.pattern.source)))
    .map((r) => ({ ...r, pattern: new RegExp(r.pattern.source.replace(/^\\b/, "").replace(END, ""), r.pattern.flags) }));
  const runRules = { prose: unbounded(spanRules), json: unbounded(jsonSpanRules) };

  /** Rule matches in `text` (already a view), earlier rules first, non-overlapping; `found` stays sorted. */
  function match(text: string, use: SecretRule[], found: Span[]) {
    for (const rule of use) {
      const mine = rule.anchor ? anchoredMatches(text, rule, found) : allMatches(text, rule, found);
      if (mine.length) merge(found, mine);
    }
  }

  /** Non-overlapping findings in original offsets, in order. Rules run on the reader's view (scan-view.ts). */
  function spansIn(view: ScanView, json: boolean): Span[] {
    const text = view.text;
    const found: Span[] = [];
    match(text, json ? jsonSpanRules : spanRules, found);
    const encoded: Span[] = [];
    for (const [start, end] of encodedRuns(text)) {
      if (overlaps(found, start, end) || overlaps(encoded, start, end)) continue; // encoded: a wrapped run read whole before its lines
      const decoded = decode(text.slice(start, end));
      if (!decoded) continue;
      const inner: Span[] = [];
      match(decoded, decodedRules, inner);
      if (inner.length) encoded.push({ start, end, rule: inner[0]!.rule });
    }
    if (encoded.length) merge(found, encoded);
    for (const [start, end] of view.runs ?? []) {
      if (end - start > RUN_SCAN_MAX) continue;
      const inner: Span[] = [];
      match(text.slice(start, end), json ? runRules.json : runRules.prose, inner);
      const more = inner.map((f) => ({ ...f, start: f.start + start, end: f.end + start })).filter((f) => !overlaps(found, f.start, f.end));
      if (more.length) merge(found, more);
    }
    for (const f of found) [f.start, f.end] = toOriginal(view, f.start, f.end);
    return found;
  }

  function redact(text: string, found: Span[]): string {
    let out = "", at = 0;
    for (const f of found) { out += text.slice(at, f.start) + `[REDACTED:${f.rule}]`; at = f.end; }
    return out + text.slice(at);
  }

  /** The earliest complete opening of a long secret in the view, in original offsets. */
  function firstOpening(view: ScanView): { at: number; end: number; secret: LongSecret } | undefined {
    let best: { at: number; end: number; secret: LongSecret } | undefined;
    for (const secret of LONG_SECRETS) {
      if (!view.text.includes(secret.hint)) continue;
      const m = secret.open.exec(view.text);
      if (!m) continue;
      const [start, end] = toOriginal(view, m.index, m.index + m[0].length);
      if (!best || start < best.at) best = { at: start, end, secret };
    }
    return best;
  }

  /** Which long secret the opening still being written at the view's end may become (the earliest to start). */
  function openingBeingWritten(view: ScanView): LongSecret {
    let best = LONG_SECRETS[0]!, first = Infinity;
    for (const secret of LONG_SECRETS) {
      const p = secret.partial(view.text);
      if (p < first) { first = p; best = secret; }
    }
    return best;
  }

  function scan(text: string, json = false) {
    // The whole text at once is final: no hold-back analysis (that is for streams), the same rules and cuts.
    const f = filter(undefined, json);
    const out = f.whole(text);
    return { text: out, findings: [...f.findings] };
  }

  function opensKey(text: string): boolean {
    if (!/KEY|[^\x00-\x7f]/.test(text)) return false; // the armor's KEY, or a character the view may read as part of it
    const view = scanView(text.slice(-OPENS_KEY_TAIL) + "\n").text; // the newline: an END armor ending the text is whole
    let open = -1;
    PEM_OPEN_ALL.lastIndex = 0;
    for (let m = PEM_OPEN_ALL.exec(view); m; m = PEM_OPEN_ALL.exec(view)) open = m.index + m[0].length;
    // Ends inside the key: after the BEGIN line only its dashes, and body lines (base64) to the end (fix-attack run:
    // a sentence quoting a BEGIN line, "never print -----BEGIN RSA PRIVATE KEY----- blocks.", is no open key).
    return open >= 0 && bodyToEnd(view, open);
  }

  function filter(startInside?: "private-key", json = false): TextFilter {
    let held = "";
    /** The last characters consumed before `held` (released or dropped), as the one-shot scan would see them. */
    let ctx = "";
    /** Inside a long secret: everything is dropped until it ends. */
    let inside: LongSecret["id"] | undefined = startInside;
    /** The redaction marker of a secret the text started inside, sent with the first output. */
    let marker = startInside ? `[REDACTED:${startInside}]` : "";
    /** What the hold-back analysis ruled out in ctx + held so far (live-tail.ts); reset when that text is replaced. */
    const memo = new LiveMemo();
    /** The view of ctx + held at the last analysis, and how much has left its front since (extendView). */
    let lastView: ScanView | undefined, viewDrop = 0;
    const restart = () => { memo.reset(); lastView = undefined; viewDrop = 0; };
    const state = { blocked: false, findings: [] as string[] };
    const note = (rule: string) => {
      if (!state.findings.includes(rule)) state.findings.push(rule);
      if (block) state.blocked = true;
    };
    /** Findings in ctx + text that reach into `text`, in offsets of `text`. */
    const inHeld = (view: ScanView, base: number) => spansIn(view, json).filter((f) => f.end > base)
      .map((f) => ({ start: Math.max(0, f.start - base), end: f.end - base, rule: f.rule }));
    /**
     * What of `text` goes out, its findings noted: redacted, or under block only what comes before the first finding
     * (the caller then ends the answer with content_filter; a stream must not go on past the secret, redacted or not).
     */
    const release = (text: string, found: Span[]) => {
      for (const f of found) note(f.rule);
      return block && found.length ? text.slice(0, found[0]!.start) : redact(text, found);
    };
    /** Scans and releases `text` (what follows ctx; `view`: of ctx + text, if made) as final: nothing after it can change it. */
    const settle = (text: string, view = scanView(ctx + text)) => release(text, inHeld(view, ctx.length));

    /** Consumes `text`; returns what may be sent now. */
    function feed(text: string, final: boolean): string {
      let out = "";
      if (marker && text) { // a text that started inside a key: found (and marked) once something of it is dropped
        note(startInside!);
        out = state.blocked ? "" : marker;
        marker = "";
      }
      while (!state.blocked) {
        if (inside === "private-key") {
          held += text; text = "";
          const view = scanView(final ? held + "\n" : held);
          const end = PEM_END.exec(view.text);
          if (!end) { if (!final) held = held.slice(-PEM_END_TAIL); else held = ""; return out; }
          text = held.slice(at(view, end.index + end[0].length)); held = ""; inside = undefined;
          continue;
        }
        if (inside === "jwt" || inside === "private-key-base64") { // its characters however written (fullwidth, look-alike, escaped, invisible ones between)
          const isChar = inside === "jwt" ? isJwtChar : isBase64Char;
          text = held + text; held = "";
          let i = 0;
          for (let n = readsAs(text, 0, isChar); n > 0; n = readsAs(text, i, isChar)) i += n;
          if (i >= text.length) return out;
          // an escape or surrogate pair still being written: what it reads as decides whether the token goes on
          if (!final && pendingEscape(text) === i) { held = text.slice(i); return out; }
          text = text.slice(i); inside = undefined;
          continue;
        }
        held += text; text = "";
        const base = ctx.length, view = lastView ? extendView(lastView, viewDrop, ctx + held) : scanView(ctx + held);
        lastView = view; viewDrop = 0;
        const open = firstOpening(view);
        if (open) {
          out += settle(held.slice(0, Math.max(0, open.at - base)));
          if (state.blocked) { held = ""; return out; } // a finding before it already blocks: the clean text before that
          note(open.secret.rule);
          if (state.blocked) { held = ""; return out; } // block: the clean text before the key, then nothing
          out += `[REDACTED:${open.secret.rule}]`;
          inside = open.secret.id;
          text = held.slice(Math.max(0, open.end - base)); held = ""; ctx = ""; restart();
          continue;
        }
        if (final) { out += settle(held, view); held = ""; return out; }
        // Final: everything before the earliest position more text could still turn into (part of) a finding,
        // and in any case everything but the last `window` chars (a secret starting earlier is whole by now) —
        // but never an opening of a long secret being written.
        const live = holdFrom(json)(ctx + held, view, base, memo);
        const opening = Math.max(0, live.opening - base);
        if (held.length - opening > HOLD_CAP) {
          // An opening still being written grows without end when what follows it is dropped from the view (zero-width
          // characters) or is blank: fail closed, as if the opening were complete, so memory and rescans stay bounded.
          const { id, rule } = openingBeingWritten(view);
          out += settle(held.slice(0, opening));
          if (state.blocked) { held = ""; return out; }
          note(rule);
          if (state.blocked) { held = ""; return out; }
          out += `[REDACTED:${rule}]`;
          inside = id; held = ""; ctx = ""; restart();
          return out;
        }
        // The forced release counts the reader's characters (the view), not code units: a stretch the view drops
        // (invisible characters, the gaps of a spaced-out word) or folds (two-unit look-alikes) must not push a
        // secret's start out before the secret is whole. HOLD_CAP code units bound the memory it may take.
        const viewCut = at(view, Math.max(0, view.text.length - window)) - base;
        const forced = Math.max(Math.min(held.length - window, viewCut), held.length - HOLD_CAP);
        let cut = Math.min(Math.max(forced, live.rules - base), live.opening - base);
        if (cut > 0 && isHigh(held.charCodeAt(cut - 1))) cut--; // never split a surrogate pair
        cut = Math.min(cut, pendingEscape(held)); // nor release an escape still being written: it is not in the view yet
        if (cut <= 0) return out;
        const found = inHeld(view, base);
        for (const f of found) if (f.start < cut && f.end > cut) cut = f.start; // never split a finding
        const emitted = found.filter((f) => f.end <= cut);
        out += release(held.slice(0, cut), emitted);
        if (state.blocked) { held = ""; return out; }
        const dropped = ctx.length + cut;
        ctx = contextOf(ctx + held.slice(0, cut));
        held = held.slice(cut);
        memo.origin += dropped - ctx.length; // ctx + held lost its front: the memo's offsets stay put
        viewDrop += dropped - ctx.length;
        return out;
      }
      held = "";
      return ""; // blocked: the caller ends the answer with content_filter
    }

    // Fed faster than a model can generate (a replay, a benchmark), text is scanned in batches instead of
    // per chunk; fed at generation speed, every chunk is scanned at once, so nothing waits for a batch.
    // A push in the same synchronous turn as the one before is a burst without asking the clock (a clock read
    // costs as much as the rest of a small push); the first push of a turn compares times.
    let lastPush = -Infinity, lastTurn = -1, batched = 0;
    return {
      get blocked() { return state.blocked; },
      get findings() { return state.findings; },
      get pending() { return held.length; },
      push(text) {
        if (state.blocked) return "";
        let burst = lastTurn === turn;
        if (!burst) {
          const now = performance.now();
          burst = now - lastPush < BURST_MS;
          lastPush = now;
          lastTurn = nextTurn();
        }
        if (burst && !inside && batched + text.length < burstChars) { held += text; batched += text.length; return ""; }
        batched = 0;
        return feed(text, false);
      },
      end: () => (state.blocked ? "" : feed("", true)),
      whole: (text: string) => feed(text, true),
    };
  }

  return { rules, window, holdBound, scan, filter, opensKey, prepare: () => { holdFrom(false); } };
}

/** Counts synchronous turns: bumped by a microtask queued at the first push of a turn. */
let turn = 0, turnQueued = false;
function nextTurn(): number {
  if (!turnQueued) { turnQueued = true; queueMicrotask(() => { turn++; turnQueued = false; }); }
  return turn;
}

/**
 * From `i` to the text's end, only the rest of a BEGIN line (blanks, dashes) and then base64 and whitespace: a key's
 * body. A loop, not a regex: a pattern of optional blanks and lines backtracks for ages on a long prompt that fails late.
 */
function bodyToEnd(text: string, i: number): boolean {
  while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "-")) i++;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const b64 = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47 || c === 61;
    if (!b64 && c !== 32 && c !== 9 && c !== 10 && c !== 13) return false;
  }
  return true;
}
/** How much of a prompt's end opensKey reads: an RSA-16384 key's body is ~12 KB. */
const OPENS_KEY_TAIL = 32_768;
const PEM_OPEN_ALL = new RegExp(LONG_SECRETS.find((l) => l.id === "private-key")!.open.source, "g");

/**
 * Characters a rule's run can be made of, as read: not spaces, and not CJK and the other scripts above U+3000 that
 * no rule reads (they end runs), fullwidth ASCII excepted.
 */
const inRun = (c: number) => !(c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || (c >= 0x2000 && c <= 0x200a)) && (c < 0x3000 || (c >= 0xff00 && c <= 0xffef));
