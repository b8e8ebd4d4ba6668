/**
 * What a response_format JSON schema must be before it becomes a grammar.
 * node-llama-cpp turns what it does not understand into `null` (so
 * `{"type":"hiccup"}` answered 200 "null"); here an unknown type or a
 * malformed keyword is a 400 naming where it is. A schema that spells one of
 * the model's control tokens is refused too: the grammar would make the model
 * write the end token as text, and generation stops there, mid-JSON.
 */
import { InvalidRequestError } from "../../errors";
import { isObject } from "../../util/is-object";

const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
export const SCHEMA_MAPS = ["properties", "$defs", "definitions", "patternProperties"];
export const SCHEMA_LISTS = ["anyOf", "oneOf", "allOf", "prefixItems"];
export const SCHEMAS = ["items", "additionalItems", "additionalProperties", "not"];
const MAX_DEPTH = 64;
/**
 * The largest minimum a grammar is built for. llama.cpp's grammar parser refuses a repetition whose count times the
 * rules it repeats passes 2,000 (MAX_REPETITION_THRESHOLD; a string's characters are two rules where its rule is
 * written first), and then prints the whole grammar to stderr. 500 leaves room for a repeated item of four rules.
 */
const MAX_REPEAT = 500;
export const REF = "#/$defs/";
/**
 * Enum values across one schema: OpenAI's own limit for structured outputs. Each is an alternative in the grammar,
 * built on the event loop: 16,000 short values held every other request ~0.85 s (1,000 build in a few ms).
 */
const MAX_ENUM_VALUES = 1000;

/** What the schemas of one request have used of its limits (the enum values of all its tools count together). */
export interface SchemaBudget { enumValues: number }

/** Throws InvalidRequestError(param `${param}.<path>`) for the first problem found. */
export function checkJsonSchema(schema: Record<string, unknown>, specialTokens: readonly string[], param: string, budget: SchemaBudget = { enumValues: 0 }): void {
  walk(schema, param, 0, new Set(), schema, budget);
  const text = JSON.stringify(schema);
  const token = specialTokens.find((t) => text.includes(t));
  if (token) throw new InvalidRequestError(`The schema contains the model's control token '${token}', which it cannot write as text.`, param);
}

/** `defs`: the `$defs` names of the schemas enclosing this one (node-llama-cpp resolves a `$ref` among them). */
function walk(s: unknown, at: string, depth: number, defs: ReadonlySet<string>, root: unknown, seen: SchemaBudget): void {
  if (typeof s === "boolean") return;
  if (!isObject(s)) throw new InvalidRequestError("A JSON schema must be an object (or true/false).", at);
  if (depth > MAX_DEPTH) throw new InvalidRequestError(`The schema is nested deeper than ${MAX_DEPTH} levels.`, at);
  const here = isObject(s.$defs) ? new Set([...defs, ...Object.keys(s.$defs)]) : defs;
  // A reference that points nowhere was generated as "any JSON" by node-llama-cpp (a warning on stderr, an answer the
  // schema did not describe); nothing is fetched, so only references into the schema itself can be met.
  if ("$ref" in s) {
    const ref = s.$ref;
    if (typeof ref !== "string" || !ref.startsWith("#")) {
      throw new InvalidRequestError(`Only references into the schema itself ("#/$defs/<name>") are supported, not ${JSON.stringify(ref)}.`, `${at}.$ref`);
    }
    const named = ref.startsWith(REF) && here.has(ref.slice(REF.length));
    const target = named ? true : pointed(root, ref);
    if (target === undefined) throw new InvalidRequestError(`'$ref' ${JSON.stringify(ref)} points to nothing in this schema.`, `${at}.$ref`);
    // into a const's value, or an array's length: data, not a schema (node-llama-cpp generated null for it)
    if (typeof target !== "boolean" && !isObject(target)) {
      throw new InvalidRequestError(`'$ref' ${JSON.stringify(ref)} points to ${JSON.stringify(target)?.slice(0, 40)}, which is not a schema.`, `${at}.$ref`);
    }
  }
  if ("type" in s) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.length) throw new InvalidRequestError("'type' must name at least one type.", `${at}.type`);
    for (const t of types) {
      if (typeof t !== "string" || !TYPES.has(t)) {
        throw new InvalidRequestError(`Unknown JSON schema type ${JSON.stringify(t)} (known: ${[...TYPES].join(", ")}).`, `${at}.type`);
      }
    }
  }
  if ("required" in s && !(Array.isArray(s.required) && s.required.every((r) => typeof r === "string"))) {
    throw new InvalidRequestError("'required' must be an array of property names.", `${at}.required`);
  }
  // llama.cpp refuses a grammar that repeats too much (MAX_REPEAT), and prints the whole grammar (the schema's const
  // and enum values with it) to stderr, the service's journal: such a minimum is a 400 before it is built.
  for (const k of ["minLength", "minItems", "minProperties"]) {
    if (typeof s[k] === "number" && s[k] > MAX_REPEAT) throw new InvalidRequestError(`'${k}' above ${MAX_REPEAT} cannot be enforced by the grammar.`, `${at}.${k}`);
  }
  // Text the grammar writes verbatim: node-llama-cpp escapes \t \n \r in it but writes the other control characters
  // raw, which no JSON parser takes (a 200 answer that does not parse).
  for (const [k, v] of [["const", s.const], ["enum", s.enum], ["required", s.required], ["properties", isObject(s.properties) ? Object.keys(s.properties) : undefined]] as const) {
    if (v !== undefined && hasRawControl(v)) {
      throw new InvalidRequestError(`'${k}' holds a control character (U+0000-U+001F other than tab, newline, return), which the grammar cannot write as JSON.`, `${at}.${k}`);
    }
  }
  if ("enum" in s && !(Array.isArray(s.enum) && s.enum.length > 0)) {
    throw new InvalidRequestError("'enum' must be a non-empty array.", `${at}.enum`);
  }
  if (Array.isArray(s.enum) && (seen.enumValues += s.enum.length) > MAX_ENUM_VALUES) {
    throw new InvalidRequestError(`The schema has more than ${MAX_ENUM_VALUES} enum values in all (OpenAI's limit too; a request's tools count together).`, `${at}.enum`);
  }
  for (const k of SCHEMA_MAPS) {
    if (!(k in s)) continue;
    if (!isObject(s[k])) throw new InvalidRequestError(`'${k}' must be an object of schemas.`, `${at}.${k}`);
    for (const [name, sub] of Object.entries(s[k])) walk(sub, `${at}.${k}.${name}`, depth + 1, here, root, seen);
  }
  for (const k of SCHEMA_LISTS) {
    if (!(k in s)) continue;
    const list = s[k];
    if (!Array.isArray(list)) throw new InvalidRequestError(`'${k}' must be an array of schemas.`, `${at}.${k}`);
    // a union of no branch: node-llama-cpp wrote nothing in its place ("" or `{"a":}`, which does not parse)
    if (!list.length && (k === "anyOf" || k === "oneOf")) throw new InvalidRequestError(`'${k}' must list at least one schema.`, `${at}.${k}`);
    list.forEach((sub, i) => walk(sub, `${at}.${k}.${i}`, depth + 1, here, root, seen));
  }
  // draft-07 tuples: `items` as an array of schemas (Pydantic v1's Tuple, TypeBox's Tuple)
  if (Array.isArray(s.items)) s.items.forEach((sub, i) => walk(sub, `${at}.items.${i}`, depth + 1, here, root, seen));
  for (const k of SCHEMAS) if (k in s && !(k === "items" && Array.isArray(s.items))) walk(s[k], `${at}.${k}`, depth + 1, here, root, seen);
}

const RAW_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
/** A string in `v` (a value, its object keys and members) with a control character node-llama-cpp would write raw. */
function hasRawControl(v: unknown, depth = 0): boolean {
  if (typeof v === "string") return RAW_CONTROL.test(v);
  if (depth > MAX_DEPTH || !v || typeof v !== "object") return false;
  const entries = Array.isArray(v) ? v.map((x) => ["", x] as const) : Object.entries(v);
  return entries.some(([k, x]) => RAW_CONTROL.test(k) || hasRawControl(x, depth + 1));
}

/** What a JSON pointer fragment ("#/a/b") points to in `root`, or undefined. */
export function pointed(root: unknown, ref: string): unknown {
  let path: string[];
  try {
    path = ref.slice(1).split("/").slice(1).map((p) => decodeURIComponent(p).replaceAll("~1", "/").replaceAll("~0", "~"));
  } catch {
    return undefined; // a malformed %-escape points nowhere
  }
  let at: unknown = root;
  for (const key of path) {
    // an array is entered by index only (its "length" is no member of the JSON)
    if (!at || typeof at !== "object" || !Object.hasOwn(at, key) || (Array.isArray(at) && !/^(0|[1-9]\d*)$/.test(key))) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}
