/**
 * A small, deliberately conservative set of prompt-injection phrases. They FLAG
 * by default (recorded in audit and the x-appliance-prompt-flags header): text
 * such as "how do I ignore previous rows in SQL" must still work, so blocking
 * on phrases alone would be a bug, not safety. Written for this project.
 *
 * The patterns run on the skeleton of the text (guards/normalise.ts): lower
 * case, NFKC, look-alikes mapped, every run of separators one space. So
 * "Ｉｇｎｏｒｅ", "іgnоre" (Cyrillic) and "ignore-all-previous-instructions"
 * all read "ignore all previous instructions".
 */
export interface PhraseRule { id: string; pattern: RegExp }

export const INJECTION_PHRASES: PhraseRule[] = [
  { id: "injection.ignore_previous", pattern: /\b(?:ignore|disregard|forget|skip|override) (?:(?:all|any|every|of|the|your|my|these|those) ){0,4}(?:previous|prior|above|earlier|preceding|former|foregoing|system) (?:instructions?|prompts?|rules|directions|directives|guidelines|context)\b/ },
  { id: "injection.system_prompt_leak", pattern: /\b(?:reveal|print|show|repeat|output|display|dump|leak) (?:me )?(?:(?:your|the|all|of|full|entire|complete) ){1,3}(?:system prompt|hidden instructions|initial instructions|original instructions|instructions above)\b/ },
  { id: "injection.role_override", pattern: /\byou are now (?:in )?(?:a |an )?(?:developer|dan|jailbreak|jailbroken|unrestricted|unfiltered|god) ?mode\b/ },
  { id: "injection.new_instructions", pattern: /\b(?:new|updated) system (?:instructions|prompt) ?:/ },
];
