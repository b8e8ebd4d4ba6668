/**
 * A checked JSON schema (json-schema.ts) rewritten into the forms node-llama-cpp's grammar generator follows. What it
 * does not know it generates as `null` (anyOf, allOf, a type list naming "object" or "array") or as "any JSON" (a
 * $ref not of the form #/$defs/<name>): an answer the schema did not describe, such as `null` for every Pydantic
 * `Optional[str]` field (`anyOf: [{type: string}, {type: null}]`). A grammar allows any branch that matches, so
 * anyOf and oneOf become the same `oneOf` (oneOf's "exactly one" is not enforced; README says so).
 */
import { InvalidRequestError } from "../../errors";
import { isObject } from "../../util/is-object";
import { pointed, REF, SCHEMA_LISTS, SCHEMA_MAPS, SCHEMAS } from "./json-schema";
import { allowedValues, meetArrays, meetBounds, meetObjects, meetTypes, narrowValues, NoValue, ownBounds, setValues } from "./json-schema-meet";

type Schema = Record<string, unknown>;

/** `param` names the schema in a 400 for what cannot be rewritten (it has passed checkJsonSchema). */
export function grammarSchema(schema: Schema, param: string): Schema {
  const refs = followableRefs(schema, param);
  const defs = isObject(refs.$defs) ? refs.$defs : {};
  return finished(plainForms(refs, param, { defs, left: MAX_PARTS }, [])) as Schema;
}

/**
 * Schemas visited by one rewrite, at most. Inlining copies what a reference holds, so a few hundred bytes of
 * definitions that each allOf the next one twice would double at every step: past this it is a 400, not a stall.
 */
const MAX_PARTS = 20_000;

/**
 * Branches two unions that must both hold may make (one per pair). Each pair copies both branches' constraints, so
 * twelve two-branch unions in an allOf (a few hundred bytes) made a 3 MB grammar of 4,096 objects.
 */
const MAX_PAIRS = 256;

interface Ctx { defs: Schema; left: number }

function spend(ctx: Ctx, at: string): void {
  if (--ctx.left < 0) throw new InvalidRequestError(`The schema expands to more than ${MAX_PARTS} parts once its references are inlined (allOf, unions of unions, or constraints beside an anyOf).`, at);
}

/** Keywords that only describe: they never need to reach the branches of a oneOf. */
const NOTES = new Set(["title", "description", "default", "examples", "$comment", "$defs", "definitions", "$schema", "$id", "deprecated", "readOnly", "writeOnly"]);

function plainForms(s: unknown, at: string, ctx: Ctx, inlining: string[]): unknown {
  if (!isObject(s)) return s;
  spend(ctx, at);
  let out = leftOut(mapChildren(s, (v, path) => {
    try {
      return plainForms(v, `${at}.${path}`, ctx, inlining);
    } catch (e) {
      if (e instanceof NoValue && DROPPABLE.test(path)) return false; // left out just below
      throw e;
    }
  }), at);

  if (Array.isArray(out.items)) {
    // draft-07's tuple: items [..] is prefixItems; what follows it is additionalItems (absent or true: anything)
    const { items, additionalItems, ...rest } = out;
    out = { ...rest, prefixItems: items, ...(additionalItems === undefined || additionalItems === true ? {} : { items: additionalItems }) };
  }
  if ("const" in out || Array.isArray(out.enum)) {
    out = literals(out, at, ctx, inlining);
    narrowValues(out, at);
  }

  // `not: {}` is "no value" (zod's never); node-llama-cpp ignores `not` and wrote null. Any other `not` is not enforced.
  if (out.not === true || (isObject(out.not) && Object.keys(out.not).every((k) => NOTES.has(k)))) throw new NoValue(at);
  out = arrayEnd(out, at);
  ownBounds(out, at);
  if (Array.isArray(out.allOf) && out.allOf.length === 1 && isRefOnly(out.allOf[0]) && Object.keys(out).every((k) => k === "allOf" || NOTES.has(k))) {
    // Pydantic v1 writes a described field of a model type as allOf [$ref]: the reference itself, also when it recurses
    const { allOf, ...rest } = out;
    out = { ...rest, $ref: (allOf as Schema[])[0]!.$ref };
  }
  if (typeof out.$ref === "string" && out.$ref.startsWith(REF) && Object.hasOwn(ctx.defs, out.$ref.slice(REF.length))
    && Object.keys(out).some((k) => CONSTRAINTS.has(k))) {
    // node-llama-cpp follows a $ref and ignores what is beside it (`{$ref, maxLength: 3}` gave strings of any length):
    // what it points to, met with the constraints beside it (draft 2020-12 applies both). Other keywords (OpenAPI's
    // `nullable`, `example`, `x-…`) are left beside it as before, and so are constraints where the reference leads
    // back to a schema being inlined (a tree's node): merged there it cannot be generated, followed it can.
    try {
      out = inlined(out, at, ctx, inlining);
    } catch (e) {
      if (!(e instanceof InvalidRequestError) || !e.message.includes(SELF_INCLUDING)) throw e;
    }
  }
  if (Array.isArray(out.anyOf)) {
    // anyOf beside a oneOf: both must hold (a branch of each); otherwise the same union
    const { anyOf, ...rest } = out;
    out = withUnion(rest, anyOf, `${at}.anyOf`, ctx, inlining);
  }
  if (Array.isArray(out.allOf)) {
    const { allOf, ...rest } = out;
    out = (allOf as unknown[]).reduce<Schema>((acc, member, i) => merge(acc, inlined(member, `${at}.allOf.${i}`, ctx, inlining), `${at}.allOf.${i}`, ctx, inlining), rest);
  }
  // node-llama-cpp reads a type list's types alone: a list naming object or array was generated as null, and one of
  // scalars dropped their keywords (`["string", "null"]` with maxLength gave strings of any length).
  if (Array.isArray(out.type) && (out.type.length === 1 || out.type.some((t) => t === "object" || t === "array") || (typedKeywords(out) && !Array.isArray(out.oneOf)))) {
    if (out.type.length === 1) out.type = out.type[0];
    else {
      const { type, ...rest } = out;
      // beside a union, a union of types that must hold with it: one branch per pair that meets
      out = Array.isArray(rest.oneOf) ? merge(rest, { oneOf: (type as string[]).map((t) => ({ type: t })) }, `${at}.type`, ctx, inlining)
        : { oneOf: (type as string[]).map((t) => ({ ...rest, type: t })) };
    }
  }
  if (Array.isArray(out.oneOf)) {
    // node-llama-cpp reads only the branches: constraints beside them (a shared type, properties) go into each one.
    const { oneOf, ...rest } = out;
    const shared = Object.fromEntries(Object.entries(rest).filter(([k]) => !NOTES.has(k)));
    if (Object.keys(shared).length) out = { ...rest, oneOf: branches(`${at}.oneOf`, (oneOf as unknown[]).map((b, i) => () => pushInto(shared, b, `${at}.oneOf.${i}`, ctx, inlining))) };
  }
  return out;
}

/**
 * Where a part no value matches (false) is left out: a union's branch, an object's property or its other properties,
 * an array position or the items past the prefix (the array ends before it: arrayEnd).
 */
const DROPPABLE = /^(anyOf|oneOf|prefixItems|items)\.\d+$|^properties\.|^(items|additionalItems|additionalProperties)$/;

/**
 * An array position no value matches (false) ends the array there: node-llama-cpp reads `false` as a schema and
 * wrote `null` in its place (`items: false` allowed `[null, null]` where only `[]` matches). What follows the end is dropped.
 */
function arrayEnd(s: Schema, at: string): Schema {
  const prefix = Array.isArray(s.prefixItems) ? s.prefixItems : [];
  // node-llama-cpp writes every prefix position, and takes a maxItems below their number for that number (a warning
  // on stderr, an array longer than the schema allows): the positions past maxItems are never written
  if (typeof s.maxItems === "number" && prefix.length > s.maxItems) return arrayEnd({ ...s, prefixItems: prefix.slice(0, s.maxItems) }, at);
  const gap = prefix.indexOf(false);
  if (gap < 0 && s.items !== false) return s;
  const { items: _, prefixItems: __, ...rest } = s;
  const kept = gap < 0 ? prefix : prefix.slice(0, gap);
  const out: Schema = { ...rest, ...(kept.length ? { prefixItems: kept } : {}), maxItems: Math.min(kept.length, typeof s.maxItems === "number" ? s.maxItems : Infinity) };
  return out;
}

/** The names in `s.required` that `s.properties` does not list. */
const unlisted = (s: Schema): string[] =>
  Array.isArray(s.required) ? (s.required as string[]).filter((k) => !(isObject(s.properties) && Object.hasOwn(s.properties, k))) : [];

/** `s` without its union branches that allow no value (false); no value matches it if a union loses every branch, or a required property allows none. */
function leftOut(s: Schema, at: string): Schema {
  for (const k of ["anyOf", "oneOf"]) {
    if (!Array.isArray(s[k]) || !s[k].includes(false)) continue;
    s[k] = s[k].filter((b) => b !== false);
    if (!(s[k] as unknown[]).length) throw new NoValue(`${at}.${k}`);
  }
  if (isObject(s.properties) && Array.isArray(s.required)) {
    const needed = s.required.find((k) => (s.properties as Schema)[k as string] === false);
    if (needed !== undefined) throw new NoValue(`${at}.properties.${needed}`);
  }
  // a required name it does not list, and no other allowed (finished() writes the allowed ones)
  if (s.type === "object" && s.additionalProperties === false && unlisted(s).length) throw new NoValue(`${at}.required`);
  // more required names than maxProperties allows; fewer names allowed at all than minProperties asks for
  const required = Array.isArray(s.required) ? new Set(s.required).size : 0;
  if (typeof s.maxProperties === "number" && required > s.maxProperties) throw new NoValue(`${at}.maxProperties`);
  if (typeof s.minProperties === "number" && s.additionalProperties === false && !isObject(s.patternProperties) && listedCount(s) < s.minProperties) throw new NoValue(`${at}.minProperties`);
  return s;
}

/** How many properties `s` lists that may be present (not false). */
const listedCount = (s: Schema) => isObject(s.properties) ? Object.values(s.properties).filter((v) => v !== false).length : 0;

/**
 * What is done once the rewrite is: until then, properties that must be absent (false) stay, so that a part listing
 * the same name meets them, and a schema with no type keeps none, so that parts met later are not held to the type
 * one part's keywords imply (`{allOf: [{enum: ["x"]}, {minimum: 2}]}` allows "x": minimum applies to numbers only).
 * node-llama-cpp writes every listed property and no other unless additionalProperties allows more: then none is
 * allowed (stricter than the schema, which only forbade those names).
 */
function finished(s: unknown): unknown {
  if (!isObject(s)) return s;
  const out = mapChildren(s, finished);
  const implied = impliedType(out);
  if (implied) out.type = implied;
  // A required name an object does not list must still be there: node-llama-cpp writes listed properties only (it
  // answered `{}` to `{"type": "object", "required": ["a"]}`). Its value is what additionalProperties allows; with
  // none given any value, and `{}` is written as null, which any value includes.
  const missing = out.type === "object" ? unlisted(out) : [];
  if (missing.length) {
    const value = isObject(out.additionalProperties) ? out.additionalProperties : {};
    out.properties = { ...(isObject(out.properties) ? out.properties : {}), ...Object.fromEntries(missing.map((k) => [k, value])) };
  }
  if (isObject(out.properties) && Object.values(out.properties).includes(false)) {
    out.properties = Object.fromEntries(Object.entries(out.properties).filter(([, v]) => v !== false));
    // a name that must be absent would still be written as one more property: allow none beyond those listed
    if (out.additionalProperties !== undefined) out.additionalProperties = false;
  }
  return fewestProperties(out);
}

/**
 * node-llama-cpp writes every listed property, and takes a maxProperties below their number for that number (an
 * "exactly one of a, b, c" object got all three): the required ones are kept (leftOut refused more of them than the
 * bound), then optional ones in the order listed while there is room; the rest, and any beyond those listed, left out.
 */
function fewestProperties(s: Schema): Schema {
  if (typeof s.maxProperties !== "number" || !isObject(s.properties) || listedCount(s) <= s.maxProperties) return s;
  const required = new Set(Array.isArray(s.required) ? s.required as string[] : []);
  let room = s.maxProperties - Object.keys(s.properties).filter((k) => required.has(k)).length;
  const kept = Object.entries(s.properties).filter(([k]) => required.has(k) || room-- > 0);
  return { ...s, properties: Object.fromEntries(kept), additionalProperties: false };
}

/**
 * A branch with the constraints beside its oneOf added. node-llama-cpp follows a $ref and ignores what is beside it,
 * and reads only the branches of a oneOf: so a referenced branch is inlined, and a nested oneOf gets them in each of its branches.
 */
function pushInto(shared: Schema, b: unknown, at: string, ctx: Ctx, inlining: string[]): unknown {
  if (b === true) return shared; // "anything" with the constraints is the constraints
  if (!isObject(b)) return b;
  if (typeof b.$ref === "string") b = inlined(b, at, ctx, inlining);
  const branch = b as Schema;
  if (Array.isArray(branch.oneOf)) return { ...branch, oneOf: branches(`${at}.oneOf`, branch.oneOf.map((x, i) => () => pushInto(shared, x, `${at}.oneOf.${i}`, ctx, inlining))) };
  return merge(shared, branch, at, ctx, inlining);
}

const isRefOnly = (s: unknown) => isObject(s) && typeof s.$ref === "string" && Object.keys(s).every((k) => k === "$ref" || NOTES.has(k));

/** A union put in a schema: beside a oneOf it already has, a value must match a branch of each. */
function withUnion(s: Schema, union: unknown[], at: string, ctx: Ctx, inlining: string[]): Schema {
  return Array.isArray(s.oneOf) ? merge(s, { oneOf: union }, at, ctx, inlining) : { ...s, oneOf: union };
}

/**
 * const and enum values that are objects or arrays as schemas matching exactly that value: node-llama-cpp writes
 * only scalar literals ("Unrecognized literal type: object"). They must hold with what is beside them (a union too).
 */
function literals(s: Schema, at: string, ctx: Ctx, inlining: string[]): Schema {
  const structured = (v: unknown) => typeof v === "object" && v !== null;
  if ("const" in s && structured(s.const)) {
    const { const: value, ...rest } = s;
    return merge(rest, literal(value), `${at}.const`, ctx, inlining);
  }
  if (Array.isArray(s.enum) && s.enum.some(structured)) {
    const { enum: values, ...rest } = s;
    return withUnion(rest, (values as unknown[]).map(literal), `${at}.enum`, ctx, inlining);
  }
  return s;
}

function literal(v: unknown): Schema {
  if (Array.isArray(v)) return { type: "array", prefixItems: v.map(literal), minItems: v.length, maxItems: v.length };
  if (typeof v === "object" && v !== null) {
    const entries = Object.entries(v);
    return { type: "object", properties: Object.fromEntries(entries.map(([k, x]) => [k, literal(x)])), required: entries.map(([k]) => k), additionalProperties: false };
  }
  return { const: v };
}

/** Keywords that apply to one type only: a schema with no type that uses them means that type. */
const TYPED: [string, readonly string[]][] = [
  ["object", ["properties", "required", "additionalProperties", "patternProperties", "minProperties", "maxProperties"]],
  ["array", ["items", "prefixItems", "minItems", "maxItems"]],
  ["string", ["minLength", "maxLength", "pattern", "format"]],
  ["number", ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]],
];

/** Whether `s` holds a keyword that applies to one type only (TYPED). */
const typedKeywords = (s: Schema) => TYPED.some(([, keys]) => keys.some((k) => k in s));

/**
 * The type a schema with none means by its keywords (`{properties: …}` is an object), or undefined: node-llama-cpp
 * generates `null` for a schema with no type. Only when exactly one type's keywords are there and nothing else
 * (a $ref, a const or enum, branches) says what the value is.
 */
function impliedType(s: Schema): string | undefined {
  if ("type" in s || ["$ref", "const", "enum", "oneOf", "anyOf"].some((k) => k in s)) return undefined;
  const types = TYPED.filter(([, keys]) => keys.some((k) => k in s)).map(([t]) => t);
  return types.length === 1 ? types[0] : undefined;
}

const IN_REF = "In what this $ref points to: ";
const SELF_INCLUDING = "A schema that includes itself through $ref";
/** Keywords beside a $ref that constrain the value: what it points to is met with them. */
const CONSTRAINTS = new Set(["type", "const", "enum", "anyOf", "oneOf", "allOf", "not", ...[
  "properties", "required", "additionalProperties", "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems",
  "minLength", "maxLength", "format"]]);

/** An allOf member as a plain schema: a reference is replaced by what it names (once per chain, so never a loop). */
function inlined(member: unknown, at: string, ctx: Ctx, inlining: string[]): Schema {
  if (member === true) return {};
  if (!isObject(member)) throw new InvalidRequestError("An allOf member that allows nothing (false) cannot be generated.", at);
  if (typeof member.$ref !== "string") return member;
  const name = member.$ref.startsWith(REF) ? member.$ref.slice(REF.length) : "";
  if (!Object.hasOwn(ctx.defs, name)) throw new InvalidRequestError(`An allOf member's $ref ${JSON.stringify(member.$ref)} must point into the schema.`, `${at}.$ref`);
  if (inlining.includes(name)) throw new InvalidRequestError(`${SELF_INCLUDING} where it has to be merged (in an allOf, or beside an anyOf/oneOf with constraints of its own) cannot be generated.`, `${at}.$ref`);
  const { $ref: _, ...rest } = member;
  try {
    const target = plainForms(ctx.defs[name], at, ctx, [...inlining, name]);
    if (target === false) throw new NoValue(at);
    return merge(isObject(target) ? target : {}, rest, at, ctx, inlining); // a definition that is `true` allows anything
  } catch (e) {
    // what the reference holds has no path the client wrote: name the reference (a NoValue drops a branch instead)
    if (e instanceof InvalidRequestError && !(e instanceof NoValue) && !e.message.startsWith(IN_REF)) throw new InvalidRequestError(`${IN_REF}${e.message}`, `${at}.$ref`);
    throw e;
  }
}

/**
 * Both schemas' constraints, met: required unioned; each property what both allow for it (meetObjects: a name one
 * does not list takes its additionalProperties), each array position likewise; the tighter of two bounds; const
 * and enum values both allow; $defs joined (b's wins for a name in both); any other keyword b's. Two unions are one
 * branch per pair of branches (a value must match one of each): keeping one, as the spread would, left the other
 * union unenforced.
 */
function merge(a: Schema, b: Schema, at: string, ctx: Ctx, inlining: string[]): Schema {
  const out: Schema = { ...a, ...b };
  if (isObject(a.$defs) && isObject(b.$defs)) out.$defs = { ...a.$defs, ...b.$defs };
  if (Array.isArray(a.required) && Array.isArray(b.required)) out.required = [...new Set([...a.required, ...b.required])];
  const sub = (x: unknown, y: unknown, path: string) => meetOrNone(x, y, `${at}.${path}`, ctx, inlining);
  meetBounds(a, b, out, at);
  meetObjects(a, b, out, sub);
  meetArrays(a, b, out, sub, at);
  const type = meetTypes(a.type, b.type);
  if (type) {
    if (!type.length) throw new NoValue(at);
    out.type = type.length === 1 ? type[0] : type;
  }
  const shared = allowedValues(a, b, at); // both name values: the spread kept b's
  if (shared) setValues(out, shared, "const" in a || "const" in b);
  narrowValues(out, at);
  if (Array.isArray(a.oneOf) && Array.isArray(b.oneOf)) {
    if (a.oneOf.length * b.oneOf.length > MAX_PAIRS) throw new InvalidRequestError(`Unions that must all hold make more than ${MAX_PAIRS} branches together (one per combination of their branches).`, at);
    out.oneOf = branches(`${at}.oneOf`, a.oneOf.flatMap((x, i) => (b.oneOf as unknown[]).map((y, j) => () => both(x, y, `${at}.oneOf.${i}.${j}`, ctx, inlining))));
  }
  // one part's required name that the other's properties (or the meeting of both) leave no value for
  return leftOut(out, at);
}

/**
 * What matches both of two schemas at one place (a property, an array position), or false where no value does. The
 * same schema twice (a shared constraint pushed into a branch that has it) is kept as is.
 */
function meetOrNone(x: unknown, y: unknown, at: string, ctx: Ctx, inlining: string[]): unknown {
  if (x === false || y === false) return false;
  if (x === true || x === y || Bun.deepEquals(x, y)) return y;
  if (y === true) return x;
  try {
    return both(x, y, at, ctx, inlining);
  } catch (e) {
    if (e instanceof NoValue) return false;
    throw e;
  }
}

/** A value matching both branches: references inlined, a nested union per branch. */
function both(x: unknown, y: unknown, at: string, ctx: Ctx, inlining: string[]): unknown {
  spend(ctx, at);
  if (x === false || y === false) throw new NoValue(at);
  const a = inlined(x, at, ctx, inlining); // true is {}
  // a union's own constraints are in each of its branches already (plainForms pushed them there)
  if (Array.isArray(a.oneOf)) return { oneOf: branches(`${at}.oneOf`, a.oneOf.map((xx, i) => () => both(xx, y, `${at}.oneOf.${i}`, ctx, inlining))) };
  return pushInto(a, y, at, ctx, inlining);
}

/** A union's branches, each made by its maker; those no value matches are left out, and if none is left, no value matches the union. */
function branches(at: string, makers: (() => unknown)[]): unknown[] {
  const out: unknown[] = [];
  for (const make of makers) {
    try { out.push(make()); } catch (e) { if (!(e instanceof NoValue)) throw e; }
  }
  if (!out.length) throw new NoValue(at);
  return out;
}

/**
 * node-llama-cpp follows only "#/$defs/<name>" among the enclosing schemas' $defs; any other reference (draft-07's
 * "#/definitions/x", which Pydantic v1 and zod-to-json-schema write; "#" for a recursive root; "#/properties/a")
 * it generates as "any JSON". Each reference that points into the schema (checkJsonSchema has checked it does) is rewritten
 * to a root $defs entry holding what it points to, under a name no $defs in the schema uses.
 */
export function followableRefs(schema: Record<string, unknown>, param = "schema"): Record<string, unknown> {
  const taken = new Set<string>();
  collectDefNames(schema, taken);
  const names = new Map<string, string>(); // reference → its root $defs name
  const added: Record<string, unknown> = {};
  let n = 0;
  // Only where schemas are (mapChildren): a value under "const" or "enum" is data, never rewritten.
  let left = MAX_PARTS; // each reference copies what it points to: many references into a large part add up
  const rewrite = (s: unknown): unknown => {
    if (!isObject(s)) return s;
    if (--left < 0) throw new InvalidRequestError(`The schema expands to more than ${MAX_PARTS} parts once each reference is copied.`, param);
    const out = mapChildren(s, rewrite);
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

/**
 * `s` with each schema it holds replaced by `f(sub, path)`, `path` relative to `s` ("properties.a", "anyOf.0"):
 * the places checkJsonSchema checks, a draft-07 tuple's `items` list included. Everything else is kept as is.
 */
function mapChildren(s: Schema, f: (sub: unknown, path: string) => unknown): Schema {
  const out: Schema = { ...s };
  for (const k of SCHEMA_MAPS) if (isObject(s[k])) out[k] = Object.fromEntries(Object.entries(s[k]).map(([n, v]) => [n, f(v, `${k}.${n}`)]));
  for (const k of SCHEMA_LISTS) if (Array.isArray(s[k])) out[k] = s[k].map((v, i) => f(v, `${k}.${i}`));
  for (const k of SCHEMAS) if (k in s) out[k] = Array.isArray(s[k]) ? s[k].map((v, i) => f(v, `${k}.${i}`)) : f(s[k], k);
  return out;
}

function collectDefNames(s: unknown, into: Set<string>): void {
  if (Array.isArray(s)) for (const v of s) collectDefNames(v, into);
  if (!isObject(s)) return; // (a "$defs" key inside const data is counted too: harmless, the name is just skipped)
  if (isObject(s.$defs)) for (const k of Object.keys(s.$defs)) into.add(k);
  for (const v of Object.values(s)) collectDefNames(v, into);
}
