/**
 * JSON-schema grammars with numbers a JSON parser can hold. node-llama-cpp's
 * number rules allow a 16-digit exponent, so `{"type":"integer"}` could yield
 * `3E6840680684068214` (parses to Infinity). Integers here are at most 15
 * digits with no exponent (always a safe integer); other numbers keep a
 * fraction and an exponent of at most two digits (always finite).
 */
import type { Llama, LlamaGrammar } from "node-llama-cpp";

const INTEGER = `"-"? ("0" | [1-9] [0-9]{0,14})`;
const FRACTIONAL = `${INTEGER} ("." [0-9]{1,15})? ([eE] [-+]? [1-9] [0-9]?)?`;

/** Replaces the two number rules node-llama-cpp emits (reservedRuleNames in its gbnfJson) by the bounded ones. */
export function boundNumberRules(grammar: string): string {
  return grammar
    .replace(/^integer-number-rule ::= .*$/m, `integer-number-rule ::= ${INTEGER}`)
    .replace(/^fractional-number-rule ::= .*$/m, `fractional-number-rule ::= ${FRACTIONAL}`);
}

export async function jsonSchemaGrammar(llama: Llama, schema: Record<string, unknown>): Promise<LlamaGrammar> {
  const base = await llama.createGrammarForJsonSchema(schema as never);
  return llama.createGrammar({
    grammar: boundNumberRules(base.grammar),
    stopGenerationTriggers: base.stopGenerationTriggers,
    trimWhitespaceSuffix: base.trimWhitespaceSuffix,
    rootRuleName: base.rootRuleName,
  });
}
