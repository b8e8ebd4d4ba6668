/**
 * A small, deliberately conservative set of prompt-injection phrases. They FLAG
 * by default (recorded in audit and the x-appliance-prompt-flags header): text
 * such as "how do I ignore previous rows in SQL" must still work, so blocking
 * on phrases alone would be a bug, not safety. Written for this project.
 */
export interface PhraseRule { id: string; pattern: RegExp }

export const INJECTION_PHRASES: PhraseRule[] = [
  { id: "injection.ignore_previous", pattern: /\b(ignore|disregard|forget)\s+(all\s+)?(the\s+)?(previous|prior|above|earlier)\s+(instructions|prompts|rules|directions)\b/i },
  { id: "injection.system_prompt_leak", pattern: /\b(reveal|print|show|repeat|output)\s+(me\s+)?(your|the)\s+(system\s+prompt|hidden\s+instructions|initial\s+instructions)\b/i },
  { id: "injection.role_override", pattern: /\byou\s+are\s+now\s+(in\s+)?(developer|dan|jailbreak|unrestricted|god)\s*mode\b/i },
  { id: "injection.new_instructions", pattern: /\b(new|updated)\s+system\s+(instructions|prompt)\s*:/i },
];

/** Invisible and bidi-control characters (Trojan Source, CVE-2021-42574) and tag characters. */
export const INVISIBLE = /[\u00AD\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF\u{E0000}-\u{E007F}]/gu;
