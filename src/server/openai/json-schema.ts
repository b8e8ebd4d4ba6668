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
const REF = "#/$defs/";

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Throws InvalidRequestError(param `${param}.<path>`) for the first problem found; returns the schema the grammar is
 * made from (references made followable: followableRefs).
 */
export function checkJsonSchema(schema: Record<string, unknown>, specialTokens: readonly string[], param: string): Record<string, unknown> {
  walk(schema, param, 0, new Set());
  const text = JSON.stringify(schema);
  const token = specialTokens.find((t) => text.includes(t));
  if (token) throw new InvalidRequestError(`The schema contains the model's control token '${token}', which it cannot write as text.`, param);
  return followableRefs(schema);
}

/**
 * node-llama-cpp follows only "#/$defs/<name>" among the enclosing schemas' $defs; any other reference (draft-07's
 * "#/definitions/x", which Pydantic v1 and zod-to-json-schema write; "#" for a recursive root; "#/properties/a")
 * it generates as "any JSON". Each reference that points into the schema (walk() has checked it does) is rewritten
 * to a root $defs entry holding what it points to, under a name no $defs in the schema uses.
 */
export function followableRefs(schema: Record<string, unknown>): Record<string, unknown> {
  const taken = new Set<string>();
  collectDefNames(schema, taken);
  const names = new Map<string, string>(); // reference → its root $defs name
  const added: Record<string, unknown> = {};
  let n = 0;
  // Only where walk() looks for schemas: a value under "const" or "enum" is data, never rewritten.
  const rewrite = (s: unknown): unknown => {
    if (!isObject(s)) return s;
    const out: Record<string, unknown> = { ...s };
    for (const k of SCHEMA_MAPS) if (isObject(s[k])) out[k] = Object.fromEntries(Object.entries(s[k]).map(([name, sub]) => [name, rewrite(sub)]));
    for (const k of SCHEMA_LISTS) if (Array.isArray(s[k])) out[k] = s[k].map(rewrite);
    for (const k of SCHEMAS) if (k in s) out[k] = rewrite(s[k]);
    const ref = s.$ref;
    if (typeof ref !== "string") return out;
    const target = pointed(schema, ref);
    if (target === undefined) return out; // a $defs name node-llama-cpp finds among enclosing schemas: left to it
    let name = names.get(ref);
    if (name === undefined) {
      do name = `ref${++n}`; while (taken.has(name));
      names.set(ref, name);
      added[name] = rewrite(target);
    }
    out.$ref = `${REF}${name}`;
    return out;
  };
  const out = rewrite(schema) as Record<string, unknown>;
  if (!names.size) return schema;
  return { ...out, $defs: { ...(isObject(out.$defs) ? out.$defs : {}), ...added } };
}

function collectDefNames(s: unknown, into: Set<string>): void {
  if (Array.isArray(s)) for (const v of s) collectDefNames(v, into);
  if (!isObject(s)) return; // (a "$defs" key inside const data is counted too: harmless, the name is just skipped)
  if (isObject(s.$defs)) for (const k of Object.keys(s.$defs)) into.add(k);
  for (const v of Object.values(s)) collectDefNames(v, into);
}

/** `defs`: the `$defs` names of the schemas enclosing this one (node-llama-cpp resolves a `$ref` among them). */
function walk(s: unknown, at: string, depth: number, defs: ReadonlySet<string>, root: unknown = s): void {
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
    if (!named && pointed(root, ref) === undefined) {
      throw new InvalidRequestError(`'$ref' ${JSON.stringify(ref)} points to nothing in this schema.`, `${at}.$ref`);
    }
  }
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
    for (const [name, sub] of Object.entries(s[k])) walk(sub, `${at}.${k}.${name}`, depth + 1, here, root);
  }
  for (const k of SCHEMA_LISTS) {
    if (!(k in s)) continue;
    const list = s[k];
    if (!Array.isArray(list)) throw new InvalidRequestError(`'${k}' must be an array of schemas.`, `${at}.${k}`);
    list.forEach((sub, i) => walk(sub, `${at}.${k}.${i}`, depth + 1, here, root));
  }
  for (const k of SCHEMAS) if (k in s) walk(s[k], `${at}.${k}`, depth + 1, here, root);
}

/** What a JSON pointer fragment ("#/a/b") points to in `root`, or undefined. */
function pointed(root: unknown, ref: string): unknown {
  let path: string[];
  try {
    path = ref.slice(1).split("/").slice(1).map((p) => decodeURIComponent(p).replaceAll("~1", "/").replaceAll("~0", "~"));
  } catch {
    return undefined; // a malformed %-escape points nowhere
  }
  let at: unknown = root;
  for (const key of path) {
    if (!at || typeof at !== "object" || !Object.hasOwn(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}
