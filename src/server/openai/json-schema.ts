/**
 * What a response_format JSON schema must be before it becomes a grammar.
 * node-llama-cpp turns what it does not understand into `null` (so
 * `{"type":"hiccup"}` answered 200 "null"); here an unknown type or a
 * malformed keyword is a 400 naming where it is. A schema that spells one of
 * the model's control tokens is refused too: the grammar would make the model
 * write the end token as text, and generation stops there, mid-JSON.
 */
import { InvalidRequestError } from "../../errors";

const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
const SCHEMA_MAPS = ["properties", "$defs", "definitions", "patternProperties"];
const SCHEMA_LISTS = ["anyOf", "oneOf", "allOf", "prefixItems"];
const SCHEMAS = ["items", "additionalProperties", "not"];
const MAX_DEPTH = 64;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Throws InvalidRequestError(param `${param}.<path>`) for the first problem found. */
export function checkJsonSchema(schema: Record<string, unknown>, specialTokens: readonly string[], param: string): void {
  walk(schema, param, 0);
  const text = JSON.stringify(schema);
  const token = specialTokens.find((t) => text.includes(t));
  if (token) throw new InvalidRequestError(`The schema contains the model's control token '${token}', which it cannot write as text.`, param);
}

function walk(s: unknown, at: string, depth: number): void {
  if (typeof s === "boolean") return;
  if (!isObject(s)) throw new InvalidRequestError("A JSON schema must be an object (or true/false).", at);
  if (depth > MAX_DEPTH) throw new InvalidRequestError(`The schema is nested deeper than ${MAX_DEPTH} levels.`, at);
  if ("type" in s) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    for (const t of types) {
      if (typeof t !== "string" || !TYPES.has(t)) {
        throw new InvalidRequestError(`Unknown JSON schema type ${JSON.stringify(t)} (known: ${[...TYPES].join(", ")}).`, `${at}.type`);
      }
    }
  }
  if ("required" in s && !(Array.isArray(s.required) && s.required.every((r) => typeof r === "string"))) {
    throw new InvalidRequestError("'required' must be an array of property names.", `${at}.required`);
  }
  if ("enum" in s && !(Array.isArray(s.enum) && s.enum.length > 0)) {
    throw new InvalidRequestError("'enum' must be a non-empty array.", `${at}.enum`);
  }
  for (const k of SCHEMA_MAPS) {
    if (!(k in s)) continue;
    if (!isObject(s[k])) throw new InvalidRequestError(`'${k}' must be an object of schemas.`, `${at}.${k}`);
    for (const [name, sub] of Object.entries(s[k])) walk(sub, `${at}.${k}.${name}`, depth + 1);
  }
  for (const k of SCHEMA_LISTS) {
    if (!(k in s)) continue;
    const list = s[k];
    if (!Array.isArray(list)) throw new InvalidRequestError(`'${k}' must be an array of schemas.`, `${at}.${k}`);
    list.forEach((sub, i) => walk(sub, `${at}.${k}.${i}`, depth + 1));
  }
  for (const k of SCHEMAS) if (k in s) walk(s[k], `${at}.${k}`, depth + 1);
}
