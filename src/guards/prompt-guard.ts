/**
 * Prompt guard: rules over the prompt text, each with an
 * action: block (400 prompt_rejected naming the rule), flag (allowed, recorded
 * in audit and a response header) or strip (the matched text is removed).
 * Built-in rules: the loaded model's own control tokens typed as text (read
 * from its vocabulary), invisible/bidi unicode, and injection phrases.
 */
import { AppError } from "../errors";
import type { ChatTurn } from "../engine/engine";
import type { Config } from "../config/schema";
import { INJECTION_PHRASES, INVISIBLE } from "./rules/injection";

export class PromptRejectedError extends AppError {
  constructor(ruleId: string) {
    super(`The prompt was rejected by rule '${ruleId}'.`, 400, "invalid_request_error", "prompt_rejected", ruleId);
  }
}

type Action = "block" | "flag" | "strip";
interface Rule { id: string; action: Action; find: (text: string, specials: string[]) => RegExp | null }

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export interface PromptVerdict { turns: ChatTurn[]; flags: string[]; stripped: string[] }

export function createPromptGuard(config: Pick<Config, "promptGuard">) {
  const pg = config.promptGuard;
  const rules: Rule[] = [
    {
      id: "special_tokens", action: pg.specialTokens,
      find: (_t, specials) => (specials.length ? new RegExp(specials.map(escape).join("|"), "g") : null),
    },
    { id: "invisible_unicode", action: pg.invisibleUnicode, find: () => new RegExp(INVISIBLE.source, "gu") },
    ...INJECTION_PHRASES.map((p) => ({ id: p.id, action: pg.injectionPhrases, find: () => new RegExp(p.pattern.source, "gi") })),
    ...pg.rules.map((r) => {
      const re = new RegExp(r.pattern, r.flags.includes("g") ? r.flags : r.flags + "g");
      return { id: `custom.${r.id}`, action: r.action, find: () => re };
    }),
  ];
  const specialCache = new WeakMap<string[], RegExp | null>();

  return function check(turns: ChatTurn[], specials: string[]): PromptVerdict {
    const flags: string[] = [], stripped: string[] = [];
    const out = turns.map((t) => ({ ...t }));
    for (const rule of rules) {
      let re: RegExp | null;
      if (rule.id === "special_tokens") {
        if (!specialCache.has(specials)) specialCache.set(specials, rule.find("", specials));
        re = specialCache.get(specials)!;
      } else re = rule.find("", specials);
      if (!re) continue;
      for (const t of out) {
        re.lastIndex = 0;
        if (!re.test(t.content)) continue;
        if (rule.action === "block") throw new PromptRejectedError(rule.id);
        if (rule.action === "flag") { if (!flags.includes(rule.id)) flags.push(rule.id); continue; }
        re.lastIndex = 0;
        t.content = t.content.replace(re, "");
        if (!stripped.includes(rule.id)) stripped.push(rule.id);
      }
    }
    return { turns: out, flags, stripped };
  };
}
