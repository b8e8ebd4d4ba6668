/**
 * What two JSON schemas that must both hold allow together, keyword by keyword (json-schema-grammar.ts's merge):
 * objects by property, arrays by position, bounds, const/enum values, types. Where no value can match both, a
 * NoValue: a union drops that branch, an object that property; elsewhere it is the request's 400.
 */
import { InvalidRequestError } from "../../errors";
import { isObject } from "../../util/is-object";

type Schema = Record<string, unknown>;

/** Bounds a value must be at least (the larger of two holds) or at most (the smaller). */
const LOWER = ["minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum"];
const UPPER = ["maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum"];
/** Counts no value can meet once the lower bound passes the upper one. */
const COUNTS = [["minLength", "maxLength"], ["minItems", "maxItems"], ["minProperties", "maxProperties"]] as const;

/** The tighter of each bound both set (before meetArrays, which may lower maxItems further). */
export function meetBounds(a: Schema, b: Schema, out: Schema, at: string): void {
  const both = (k: string) => typeof a[k] === "number" && typeof b[k] === "number";
  for (const k of LOWER) if (both(k)) out[k] = Math.max(a[k] as number, b[k] as number);
  for (const k of UPPER) if (both(k)) out[k] = Math.min(a[k] as number, b[k] as number);
  ownBounds(out, at);
}

/**
 * NoValue where a schema's own lower bound passes its upper one. node-llama-cpp took minLength for both ("Using
 * minLength as maxLength"), so `{minLength: 3, maxLength: 2}` wrote 3-character strings the schema forbids.
 */
export function ownBounds(s: Schema, at: string): void {
  const num = (k: string) => (typeof s[k] === "number" ? s[k] as number : undefined);
  for (const [lo, hi] of COUNTS) if (num(lo) !== undefined && num(hi) !== undefined && num(lo)! > num(hi)!) throw new NoValue(at);
  const lo = Math.max(num("minimum") ?? -Infinity, num("exclusiveMinimum") ?? -Infinity);
  const hi = Math.min(num("maximum") ?? Infinity, num("exclusiveMaximum") ?? Infinity);
  const open = lo === num("exclusiveMinimum") || hi === num("exclusiveMaximum");
  if (lo > hi || (lo === hi && open)) throw new NoValue(at);
}

/** What both schemas allow at one place, or false where no value is allowed there (either is false, or they do not meet). */
export type Sub = (x: unknown, y: unknown, path: string) => unknown;

/**
 * Where both schemas say which properties an object may have: each name takes what both allow for it, a name one
 * schema does not list what its additionalProperties allows (absent or true: anything; patternProperties, not
 * enforced, count as anything). A name no value is allowed for must be absent (false, left out at the end: node-llama-cpp
 * writes every listed property).
 */
export function meetObjects(a: Schema, b: Schema, out: Schema, sub: Sub): void {
  const says = (s: Schema) => isObject(s.properties) || s.additionalProperties !== undefined;
  if (!says(a) || !says(b)) return;
  const listed = (s: Schema) => (isObject(s.properties) ? s.properties : {});
  const others = (s: Schema) => (s.additionalProperties === undefined || "patternProperties" in s ? true : s.additionalProperties);
  const pa = listed(a), pb = listed(b), properties: Schema = {};
  for (const k of new Set([...Object.keys(pa), ...Object.keys(pb)])) {
    // false (absent) stays until the end (withoutAbsent), for parts met later; merge refuses it where required (leftOut)
    properties[k] = sub(Object.hasOwn(pa, k) ? pa[k] : others(a), Object.hasOwn(pb, k) ? pb[k] : others(b), `properties.${k}`);
  }
  if (isObject(a.properties) || isObject(b.properties)) out.properties = properties;
  const rest = sub(others(a), others(b), "additionalProperties");
  if (rest === true && a.additionalProperties === undefined && b.additionalProperties === undefined) delete out.additionalProperties;
  else out.additionalProperties = rest;
}

/** The same for arrays: each position what both allow there (prefixItems, then items); the array ends where none is. */
export function meetArrays(a: Schema, b: Schema, out: Schema, sub: Sub, at: string): void {
  const says = (s: Schema) => s.items !== undefined || Array.isArray(s.prefixItems);
  if (!says(a) || !says(b)) return;
  const prefix = (s: Schema) => (Array.isArray(s.prefixItems) ? s.prefixItems : []);
  const tail = (s: Schema) => (s.items === undefined ? true : s.items);
  const pa = prefix(a), pb = prefix(b), items: unknown[] = [];
  let end = Infinity;
  for (let i = 0; i < Math.max(pa.length, pb.length) && end === Infinity; i++) {
    const v = sub(i < pa.length ? pa[i] : tail(a), i < pb.length ? pb[i] : tail(b), `prefixItems.${i}`);
    if (v === false) end = i;
    else items.push(v);
  }
  if (items.length) out.prefixItems = items;
  else delete out.prefixItems;
  const rest = end === Infinity ? sub(tail(a), tail(b), "items") : false;
  if (rest === false) {
    delete out.items;
    out.maxItems = Math.min(items.length, typeof out.maxItems === "number" ? out.maxItems : Infinity);
    ownBounds(out, at); // a minItems past the new end: no value
  } else if (rest === true && a.items === undefined && b.items === undefined) delete out.items;
  else out.items = rest;
}

/**
 * A schema's const/enum values narrowed to those its type allows and, where it has both, to the const if the enum
 * has it (an array const's item under items of another type, a const beside a union's type): none, no value matches.
 */
export function narrowValues(s: Schema, at: string): void {
  const isConst = "const" in s;
  if (!isConst && !Array.isArray(s.enum)) return;
  let values = isConst ? [s.const] : s.enum as unknown[];
  if (isConst && Array.isArray(s.enum)) values = within(values, s.enum);
  if (s.type !== undefined) values = values.filter((v) => ofType(v, s.type));
  if (!values.length) throw new NoValue(at);
  setValues(s, values, isConst);
}

export function setValues(out: Schema, values: unknown[], asConst: boolean): void {
  delete out.const; delete out.enum;
  Object.assign(out, values.length === 1 && asConst ? { const: values[0] } : { enum: values });
}

/** The values of `values` that `list` has too (JSON values: equal by content). */
const within = (values: unknown[], list: unknown[]) => values.filter((v) => list.some((w) => Bun.deepEquals(v, w)));

/** Whether a JSON value is of a schema's type (a name or a list of names; "integer" a whole number). */
function ofType(v: unknown, type: unknown): boolean {
  const of = (t: unknown) => t === "integer" ? Number.isInteger(v) : t === "number" ? typeof v === "number" : t === "null" ? v === null
    : t === "array" ? Array.isArray(v) : t === "object" ? isObject(v) : typeof v === t;
  return Array.isArray(type) ? type.some(of) : of(type);
}

/** The scalar values both const/enum lists allow (a const is a list of one), or undefined unless both have one. */
export function allowedValues(a: Schema, b: Schema, at: string): unknown[] | undefined {
  const list = (s: Schema) => ("const" in s ? [s.const] : Array.isArray(s.enum) ? s.enum : undefined);
  const A = list(a), B = list(b);
  if (!A || !B) return undefined;
  const shared = within(A, B);
  if (!shared.length) throw new NoValue(at);
  return shared;
}

/** The types both allow ("integer" is a "number"), [] where none is shared; undefined unless both name types (the spread keeps the one named). */
export function meetTypes(a: unknown, b: unknown): string[] | undefined {
  if (a === undefined || b === undefined) return undefined;
  const list = (t: unknown) => (Array.isArray(t) ? t : [t]) as string[];
  const A = list(a), B = list(b);
  const allows = (L: string[], t: string) => L.includes(t) || (t === "integer" && L.includes("number"));
  return [...new Set([...A.filter((t) => allows(B, t)), ...B.filter((t) => allows(A, t))])];
}

/**
 * A schema no value matches (a lower bound past its upper one), or two no value matches both of (types, values,
 * bounds or allowed properties that do not meet, or one is false): a branch that is left out.
 */
export class NoValue extends InvalidRequestError {
  constructor(at: string) { super("No value matches this schema: its types, values, bounds or allowed properties do not meet (its own, or those of allOf members, or of a union's branches with the constraints beside it).", at); }
}

