/**
 * Prompt guard: rules over the prompt text, each with an
 * action: block (400 prompt_rejected naming the rule), flag (allowed, recorded
 * in audit and a response header) or strip (the matched text is removed).
 * Built-in rules: invisible/bidi unicode (by Unicode property; emoji sequences
 * and ordinary writing's joiners and direction marks excepted: normalise.ts), the
 * loaded model's own control tokens typed as text (read from its vocabulary; looked
 * for with every invisible character removed, so `<|im_\u034Fstart|>` is still one),
 * and injection phrases (matched on the normalised skeleton).
 */
import { AppError } from "../errors";
import type { ChatTurn } from "../engine/engine";
import type { Config } from "../config/schema";
import { EMOJI_SEQUENCE, INVISIBLE_CHAR, WRITING_SEQUENCE, skeleton } from "./normalise";
import { INJECTION_PHRASES } from "./rules/injection";
import { stripBySkeleton } from "./skeleton-strip";

export class PromptRejectedError extends AppError {
  constructor(ruleId: string) {
    super(`The prompt was rejected by rule '${ruleId}'.`, 400, "invalid_request_error", "prompt_rejected", ruleId);
  }
}

type Action = "block" | "flag" | "strip";

/** A rule finds its matches in one turn's text; `strip` removes them (or the whole turn's offending parts). */
interface Rule { id: string; action: Action; hit: (text: string, view: View) => boolean; strip: (text: string) => string }

/** Derived forms of a turn's text (without invisible characters; the skeleton), computed once and only when a rule asks. */
interface View { visible(): string; skeleton(): string }

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Emoji sequences and ordinary writing's joiners and marks (kept) or one invisible character (the finding). */
const INVISIBLE_SCAN = new RegExp(`(${EMOJI_SEQUENCE}|${WRITING_SEQUENCE})|${INVISIBLE_CHAR.source}`, "gu");
const INVISIBLE_ANY = new RegExp(INVISIBLE_CHAR.source, "u");

function hasInvisible(text: string): boolean {
  if (!INVISIBLE_ANY.test(text)) return false; // the common case: one quick pass
  INVISIBLE_SCAN.lastIndex = 0;
  for (const m of text.matchAll(INVISIBLE_SCAN)) if (!m[1]) return true;
  return false;
}
const stripInvisible = (text: string) => text.replace(INVISIBLE_SCAN, (_m, emoji: string | undefined) => emoji ?? "");
/**
 * Every invisible character gone, ordinary writing's too: what control tokens are looked for in. Through
 * stripInvisible, `<|im_st\u00ADart|>` kept its soft hyphen (a letter's, so kept) and was no control token (attack on
 * the fix).
 */
const INVISIBLE_ALL = new RegExp(INVISIBLE_CHAR.source, "gu");
const dropInvisible = (text: string) => text.replace(INVISIBLE_ALL, "");

/** How many readings of a turn may cut something before what a strip rule still finds is refused as a block would be. */
const STRIP_PASSES = 4;

export interface PromptVerdict { turns: ChatTurn[]; flags: string[]; stripped: string[] }

export function createPromptGuard(config: Pick<Config, "promptGuard">) {
  const pg = config.promptGuard;
  const specialCache = new WeakMap<readonly string[], RegExp | null>();
  // Each control token with any invisible characters between its characters (strip removes them with it).
  const specialsRe = (specials: readonly string[]) => {
    if (!specialCache.has(specials)) {
      specialCache.set(specials, specials.length
        ? new RegExp(specials.map((t) => [...t].map(escape).join(`(?:${INVISIBLE_CHAR.source})*`)).join("|"), "gu") : null);
    }
    return specialCache.get(specials)!;
  };

  return function check(turns: ChatTurn[], specials: readonly string[]): PromptVerdict {
    const special = specialsRe(specials);
    const rules: Rule[] = [
      { id: "invisible_unicode", action: pg.invisibleUnicode, hit: (t) => hasInvisible(t), strip: stripInvisible },
      { id: "special_tokens", action: pg.specialTokens,
        hit: (_t, v) => !!special && (special.lastIndex = 0, special.test(v.visible())),
        strip: (t) => (special ? stripInvisible(t).replace(special, "") : t) },
      ...INJECTION_PHRASES.map((p): Rule => ({ id: p.id, action: pg.injectionPhrases,
        hit: (_t, v) => p.pattern.test(v.skeleton()),
        strip: (t) => stripBySkeleton(t, p.pattern) })),
      ...pg.rules.map((r): Rule => {
        const re = new RegExp(r.pattern, r.flags.includes("g") ? r.flags : r.flags + "g");
        return { id: `custom.${r.id}`, action: r.action, hit: (t) => (re.lastIndex = 0, re.test(t)), strip: (t) => t.replace(re, "") };
      }),
    ];
    const flags: string[] = [], stripped: string[] = [];
    const out = turns.map((t) => ({ ...t }));
    for (const t of out) {
      let visible: string | undefined, skel: string | undefined;
      const view: View = { visible: () => (visible ??= dropInvisible(t.content)), skeleton: () => (skel ??= skeleton(t.content)) };
      // After a strip every rule reads the turn again: a cut can join the text around it into what a rule finds
      // (`<|new system prompt:im_start|>` left `<|im_start|>`, a control token that reached the model; `ignore previous
      // new system prompt: instructions` another phrase; attack on the fix). What a strip rule still finds after
      // STRIP_PASSES readings is refused, never passed on recorded as stripped.
      for (let pass = 0, cut = true; cut; pass++) {
        cut = false;
        for (const rule of rules) {
          if (!rule.hit(t.content, view)) continue;
          if (rule.action === "block") throw new PromptRejectedError(rule.id);
          if (rule.action === "flag") { if (!flags.includes(rule.id)) flags.push(rule.id); continue; }
          if (pass === STRIP_PASSES) throw new PromptRejectedError(rule.id);
          t.content = rule.strip(t.content);
          visible = skel = undefined;
          cut = true;
          if (!stripped.includes(rule.id)) stripped.push(rule.id);
        }
      }
    }
    return { turns: out, flags, stripped };
  };
}
