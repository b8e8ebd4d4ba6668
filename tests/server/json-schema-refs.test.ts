/** followableRefs: every in-schema reference becomes one node-llama-cpp follows ("#/$defs/<name>" at the root). */
import { describe, expect, test } from "bun:test";
import { followableRefs, grammarSchema } from "../../src/server/openai/json-schema-grammar";

describe("followableRefs", () => {
  test("draft-07 definitions and property pointers become root $defs names; the request's schema is not changed", () => {
    const schema = { type: "object", definitions: { n: { type: "integer" } }, properties: { a: { $ref: "#/definitions/n" }, b: { $ref: "#/properties/a" } } };
    const before = structuredClone(schema);
    const out = followableRefs(schema);
    expect(schema).toEqual(before);
    expect(out).toEqual({
      type: "object", definitions: { n: { type: "integer" } },
      properties: { a: { $ref: "#/$defs/ref1" }, b: { $ref: "#/$defs/ref2" } },
      // what "#/properties/a" points to is itself a reference: rewritten to the same name as the first
      $defs: { ref1: { type: "integer" }, ref2: { $ref: "#/$defs/ref1" } },
    });
  });
  test("a recursive reference to the root is one $defs entry that refers to itself", () => {
    const schema = { type: "object", properties: { next: { anyOf: [{ $ref: "#" }, { type: "null" }] } } };
    const out = followableRefs(schema) as { $defs: Record<string, unknown> };
    const node = { type: "object", properties: { next: { anyOf: [{ $ref: "#/$defs/ref1" }, { type: "null" }] } } };
    expect(out).toEqual({ ...node, $defs: { ref1: node } });
  });
  test("names already used by any $defs are skipped; $defs names node-llama-cpp resolves itself and const data stay as sent", () => {
    const schema = {
      $defs: { ref1: { type: "string" } },
      properties: {
        a: { $defs: { ref2: { type: "boolean" } }, properties: { x: { $ref: "#/$defs/ref2" } } }, // a nested $defs: node-llama-cpp's lookup
        b: { const: { $ref: "#/$defs/ref1" } },
        c: { $ref: "#/$defs/ref1" },
      },
    };
    const out = followableRefs(schema) as { $defs: Record<string, unknown>; properties: Record<string, Record<string, unknown>> };
    expect(out.properties.a).toEqual(schema.properties.a);
    expect(out.properties.b).toEqual(schema.properties.b);
    expect(out.properties.c).toEqual({ $ref: "#/$defs/ref3" });
    expect(out.$defs).toEqual({ ref1: { type: "string" }, ref3: { type: "string" } });
  });
  test("a schema with no references is returned as is", () => {
    const plain = { type: "object", properties: { a: { type: "string" } } };
    expect(followableRefs(plain)).toBe(plain);
  });
});

describe("grammarSchema: forms node-llama-cpp generates as null become ones it follows", () => {
  /** The status of what `f` throws (400 for a schema no value matches), or undefined. */
  const status = (f: () => unknown) => { try { f(); } catch (e) { return (e as { status?: number }).status; } };
  test("anyOf is oneOf (Pydantic's Optional), with constraints beside it carried into each branch", () => {
    expect(grammarSchema({ properties: { a: { anyOf: [{ type: "string" }, { type: "null" }], default: null, title: "A" } } }, "p"))
      .toEqual({ type: "object", properties: { a: { oneOf: [{ type: "string" }, { type: "null" }], default: null, title: "A" } } });
    expect(grammarSchema({ type: "object", properties: { a: { type: "string" } }, anyOf: [{ required: ["a"] }, { required: [] }] }, "p")).toEqual({
      type: "object", properties: { a: { type: "string" } },
      oneOf: [{ type: "object", properties: { a: { type: "string" } }, required: ["a"] }, { type: "object", properties: { a: { type: "string" } }, required: [] }],
    });
  });
  test("a type list naming object or array is one branch per type", () => {
    expect(grammarSchema({ type: ["array", "null"], items: { type: "integer" } }, "p"))
      .toEqual({ oneOf: [{ type: "array", items: { type: "integer" } }, { type: "null", items: { type: "integer" } }] });
    expect(grammarSchema({ type: ["object"] }, "p")).toEqual({ type: "object" });
    expect(grammarSchema({ type: ["string", "null"] }, "p")).toEqual({ type: ["string", "null"] }); // node-llama-cpp follows this one
  });
  test("allOf is merged: Pydantic v1's allOf of one reference, and object parts with their required lists", () => {
    const v1 = { definitions: { Color: { enum: ["red", "blue"] } }, properties: { c: { allOf: [{ $ref: "#/definitions/Color" }], description: "paint" } } };
    const out = grammarSchema(v1, "p") as { properties: Record<string, unknown>; $defs: Record<string, unknown> };
    expect(out.properties.c).toEqual({ description: "paint", $ref: "#/$defs/ref1" }); // kept a reference: it may recurse
    expect(out.$defs.ref1).toEqual({ enum: ["red", "blue"] });
    const tree = { definitions: { Node: { type: "object", properties: { parent: { allOf: [{ $ref: "#/definitions/Node" }], description: "up" } } } }, $ref: "#/definitions/Node" };
    expect(() => grammarSchema(tree, "p")).not.toThrow();
    expect(grammarSchema({ allOf: [{ type: "object", properties: { a: { type: "string" } }, required: ["a"] }, { properties: { b: { type: "integer" } }, required: ["b"] }] }, "p"))
      .toEqual({ type: "object", properties: { a: { type: "string" }, b: { type: "integer" } }, required: ["a", "b"] });
  });
  test("a schema with no type means the type its keywords belong to; items: false after a prefix is a length", () => {
    expect(grammarSchema({ properties: { a: { maxLength: 3 }, b: { items: { type: "null" } } }, required: ["a"] }, "p")).toEqual({
      type: "object", required: ["a"], properties: { a: { maxLength: 3, type: "string" }, b: { items: { type: "null" }, type: "array" } },
    });
    expect(grammarSchema({ minLength: 1, minimum: 2 }, "p")).toEqual({ minLength: 1, minimum: 2 }); // two types' keywords: not guessed
    expect(grammarSchema({ enum: ["a"], maxLength: 3 }, "p")).toEqual({ enum: ["a"], maxLength: 3 });
    // only the schema that results: an allOf member's keywords do not hold the others to their type ("x" matches both)
    expect(grammarSchema({ allOf: [{ enum: ["x"] }, { minimum: 2 }] }, "p")).toEqual({ enum: ["x"], minimum: 2 });
    expect(grammarSchema({ allOf: [{ properties: { a: {} } }, { type: "string" }] }, "p")).toEqual({ properties: { a: {} }, type: "string" });
    expect(grammarSchema({ allOf: [{ properties: { a: {} } }, { required: ["a"] }] }, "p")).toEqual({ type: "object", properties: { a: {} }, required: ["a"] });
    expect(grammarSchema({ type: "array", prefixItems: [{ type: "string" }], items: false }, "p"))
      .toEqual({ type: "array", prefixItems: [{ type: "string" }], maxItems: 1 });
  });
  test("constraints beside a union reach branches that are references or unions themselves (helper F3's fuzz)", () => {
    const schema = {
      $defs: { A: { type: "object", properties: { x: { type: "integer" } }, required: ["x"] } },
      allOf: [{ type: "object", properties: { id: { type: "integer" } }, required: ["id"] }, { anyOf: [{ $ref: "#/$defs/A" }, { anyOf: [{ type: "object" }] }] }],
    };
    const out = grammarSchema(schema, "p") as { oneOf: Record<string, unknown>[] };
    expect(out.oneOf[0]).toEqual({ type: "object", properties: { id: { type: "integer" }, x: { type: "integer" } }, required: ["id", "x"] });
    expect(out.oneOf[1]).toEqual({ oneOf: [{ type: "object", properties: { id: { type: "integer" } }, required: ["id"] }] });
  });
  test("two unions that must both hold (allOf members, anyOf beside oneOf) are one branch per pair; pairs no value matches are left out", () => {
    const A = { type: "object", properties: { a: { type: "string" } }, required: ["a"] };
    const C = { type: "object", properties: { c: { type: "boolean" } }, required: ["c"] };
    const D = { type: "object", properties: { d: { type: "null" } }, required: ["d"] };
    // the last union alone was kept: {c} and {d} were answers, though the first union asks for a or null
    const out = grammarSchema({ $defs: { D }, allOf: [{ anyOf: [A, { type: "null" }] }, { anyOf: [C, { $ref: "#/$defs/D" }, { type: "null" }] }] }, "p");
    expect(out).toEqual({
      $defs: { D, ref1: D },
      oneOf: [
        { type: "object", properties: { a: { type: "string" }, c: { type: "boolean" } }, required: ["a", "c"] },
        { type: "object", properties: { a: { type: "string" }, d: { type: "null" } }, required: ["a", "d"] },
        { type: "null" }, // null with C or D: no value; null with null
      ],
    });
    expect(grammarSchema({ anyOf: [{ type: "integer" }, { type: "string" }], oneOf: [{ type: "number", minimum: 1 }, { type: "boolean" }] }, "p"))
      .toEqual({ oneOf: [{ type: "integer", minimum: 1 }] });
    // a type list naming object beside a union (a 400 before): the types are one more union that must hold
    expect(grammarSchema({ type: ["object", "null"], required: ["a"], anyOf: [{ type: "object" }, { type: "null" }, { type: "string" }] }, "p"))
      .toEqual({ required: ["a"], oneOf: [{ type: "object", required: ["a"], properties: { a: {} } }, { type: "null", required: ["a"] }] });
    // a union's branch of another type than the constraints beside it matches nothing: it was `null` allowed in an object
    // (the required name it does not list is written with any value: node-llama-cpp left it out)
    expect(grammarSchema({ type: "object", anyOf: [{ required: ["a"] }, { type: "null" }] }, "p"))
      .toEqual({ type: "object", oneOf: [{ type: "object", required: ["a"], properties: { a: {} } }] });
  });
  test("draft-07 tuples are prefixItems; object and array const/enum values are schemas of exactly that value", () => {
    expect(grammarSchema({ type: "array", items: [{ type: "string" }, { $ref: "#/definitions/n" }], additionalItems: false, definitions: { n: { type: "null" } } }, "p"))
      .toEqual({ type: "array", prefixItems: [{ type: "string" }, { $ref: "#/$defs/ref1" }], maxItems: 2, definitions: { n: { type: "null" } }, $defs: { ref1: { type: "null" } } });
    expect(grammarSchema({ type: "array", items: [{ type: "string" }], additionalItems: { type: "integer" } }, "p"))
      .toEqual({ type: "array", prefixItems: [{ type: "string" }], items: { type: "integer" } });
    expect(grammarSchema({ const: { k: [1, "a"] } }, "p")).toEqual({
      type: "object", required: ["k"], additionalProperties: false,
      properties: { k: { type: "array", prefixItems: [{ const: 1 }, { const: "a" }], minItems: 2, maxItems: 2 } },
    });
    expect(grammarSchema({ enum: ["a", []] }, "p")).toEqual({ oneOf: [{ const: "a" }, { type: "array", prefixItems: [], minItems: 0, maxItems: 0 }] });
  });
  test("an enum or const of objects beside a union: both must hold (the enum's branches replaced the union's before)", () => {
    const a = (v: number) => ({ type: "object", properties: { a: { const: v } }, required: ["a"] });
    const exactly = (v: number) => ({ type: "object", properties: { a: { const: v } }, required: ["a"], additionalProperties: false });
    // {a: 3} is in the enum but in no branch; {a: 1} in a branch but not the enum: only {a: 2} is both
    expect(grammarSchema({ oneOf: [a(1), a(2)], enum: [{ a: 2 }, { a: 3 }] }, "p")).toEqual({ oneOf: [exactly(2)] });
    expect(grammarSchema({ anyOf: [a(1), a(2)], enum: [{ a: 2 }, { a: 3 }] }, "p")).toEqual({ oneOf: [exactly(2)] });
    // a const of an object beside a union is one value that must also be a branch's
    expect(grammarSchema({ oneOf: [a(1), a(2)], const: { a: 2 } }, "p")).toEqual({ ...exactly(2), oneOf: [exactly(2)] });
    let caught: { status?: number; message?: string } = {};
    try { grammarSchema({ oneOf: [a(1), a(2)], const: { a: 3 } }, "p"); } catch (e) { caught = e as typeof caught; }
    expect(caught.status).toBe(400);
    expect(caught.message).toContain("No value matches");
  });
  test("parts that must both hold are met exactly: a property in both, const and enum values (b's property and values won before)", () => {
    expect(grammarSchema({ allOf: [{ properties: { a: { type: "string" }, b: { type: "integer" } } }, { properties: { a: { maxLength: 3 } } }] }, "p"))
      .toEqual({ type: "object", properties: { a: { type: "string", maxLength: 3 }, b: { type: "integer" } } });
    expect(grammarSchema({ allOf: [{ enum: [1, 2, 3] }, { enum: [2, 3, 4] }] }, "p")).toEqual({ enum: [2, 3] });
    expect(grammarSchema({ allOf: [{ enum: ["x", "y"] }, { const: "y" }] }, "p")).toEqual({ const: "y" });
    // scalar values beside a union reach each branch: a branch of other values matches nothing and is left out
    expect(grammarSchema({ oneOf: [{ const: 1 }, { const: 2 }], enum: [2, 3] }, "p")).toEqual({ enum: [2, 3], oneOf: [{ const: 2 }] });
    // a property whose two schemas no value matches is left out (node-llama-cpp writes every listed property); required, no object matches
    const clash = [{ properties: { a: { type: "string" } } }, { properties: { a: { type: "integer" } } }];
    expect(grammarSchema({ allOf: clash }, "p")).toEqual({ type: "object", properties: {} });
    expect(status(() => grammarSchema({ allOf: clash, required: ["a"] }, "p"))).toBe(400);
    // the same when the name is required by one part and must be absent by another's properties
    expect(status(() => grammarSchema({ allOf: [{ properties: { a: false } }, { required: ["a"] }] }, "p"))).toBe(400);
    expect(grammarSchema({ properties: { a: false }, oneOf: [{ required: ["a"] }, { type: "object" }] }, "p"))
      .toEqual({ properties: {}, oneOf: [{ type: "object", properties: {} }] });
  });
  test("an object's properties meet its other part's additionalProperties; arrays meet by position; the tighter bound holds", () => {
    // a name the closed part does not list is not allowed: left out, or no object when required
    expect(grammarSchema({ allOf: [{ properties: { a: {} } }, { additionalProperties: false }] }, "p")).toEqual({ type: "object", properties: {}, additionalProperties: false });
    expect(status(() => grammarSchema({ allOf: [{ properties: { a: {} }, required: ["a"] }, { properties: { b: {} }, additionalProperties: false }] }, "p"))).toBe(400);
    expect(grammarSchema({ allOf: [{ properties: { a: { type: "integer" } } }, { additionalProperties: { type: "number", minimum: 2 } }] }, "p"))
      .toEqual({ type: "object", properties: { a: { type: "integer", minimum: 2 } }, additionalProperties: { type: "number", minimum: 2 } });
    // an object const beside properties it does not have: those are left out (the literal is closed)
    expect(grammarSchema({ properties: { a: {} }, const: { n: 1 } }, "p"))
      .toEqual({ type: "object", properties: { n: { const: 1 } }, required: ["n"], additionalProperties: false });
    expect(status(() => grammarSchema({ additionalProperties: false, const: { n: 1 } }, "p"))).toBe(400);
    // an array const beside items: each of its items meets items
    expect(status(() => grammarSchema({ const: [1], items: { type: "string" } }, "p"))).toBe(400);
    expect(grammarSchema({ allOf: [{ items: { type: "number" } }, { prefixItems: [{ type: "integer" }], items: { minimum: 0 } }] }, "p"))
      .toEqual({ type: "array", prefixItems: [{ type: "integer" }], items: { type: "number", minimum: 0 } });
    expect(grammarSchema({ allOf: [{ minimum: 5, maxLength: 1 }, { minimum: 1, maxLength: 5, minItems: 2 }] }, "p")).toMatchObject({ minimum: 5, maxLength: 1, minItems: 2 });
    expect(status(() => grammarSchema({ allOf: [{ type: "string", minLength: 3 }, { maxLength: 2 }] }, "p"))).toBe(400);
    // a position no item can take ends the array there, under both maxItems
    const pair = (second: string, bounds: object) => ({ prefixItems: [{ type: "integer" }, { type: second }], ...bounds });
    expect(grammarSchema({ allOf: [pair("integer", { maxItems: 5 }), pair("string", { maxItems: 9 })] }, "p")).toMatchObject({ prefixItems: [{ type: "integer" }], maxItems: 1 });
    expect(status(() => grammarSchema({ allOf: [pair("integer", { minItems: 2 }), pair("string", {})] }, "p"))).toBe(400);
  });
  test("one schema on its own: a position no value matches ends the array; bounds past each other match nothing", () => {
    // node-llama-cpp read `false` as a schema and wrote null there: items false allowed [null, null] where only [] matches
    expect(grammarSchema({ type: "array", items: false }, "p")).toEqual({ type: "array", maxItems: 0 });
    expect(grammarSchema({ type: "array", prefixItems: [{ type: "integer" }, false, { type: "string" }] }, "p"))
      .toEqual({ type: "array", prefixItems: [{ type: "integer" }], maxItems: 1 });
    // items no value matches: only the empty array (it took minLength for maxLength and wrote 3-character strings)
    expect(grammarSchema({ type: "array", items: { type: "string", minLength: 3, maxLength: 2 }, maxItems: 4 }, "p")).toEqual({ type: "array", maxItems: 0 });
    expect(status(() => grammarSchema({ type: "array", items: false, minItems: 1 }, "p"))).toBe(400);
    // other properties no value matches: none allowed
    expect(grammarSchema({ type: "object", additionalProperties: { type: "integer", minimum: 3, maximum: 2 } }, "p")).toEqual({ type: "object", additionalProperties: false });
    for (const bounds of [{ minLength: 3, maxLength: 2 }, { minItems: 2, maxItems: 1 }, { minProperties: 1, maxProperties: 0 }, { minimum: 5, maximum: 3 }, { exclusiveMinimum: 2, maximum: 2 }]) {
      expect(status(() => grammarSchema(bounds, "p"))).toBe(400);
      expect(grammarSchema({ anyOf: [{ type: "null" }, bounds] }, "p")).toEqual({ oneOf: [{ type: "null" }] });
    }
    expect(grammarSchema({ type: "integer", minimum: 2, maximum: 2 }, "p")).toEqual({ type: "integer", minimum: 2, maximum: 2 });
    // not: {} (zod's never) allows no value: node-llama-cpp ignores not and wrote null
    expect(grammarSchema({ type: "object", properties: { a: { type: "string" }, b: { not: {} } } }, "p")).toEqual({ type: "object", properties: { a: { type: "string" } } });
    expect(grammarSchema({ type: "array", items: { not: true } }, "p")).toEqual({ type: "array", maxItems: 0 });
    expect(status(() => grammarSchema({ not: { description: "never" } }, "p"))).toBe(400);
  });
  test("a union branch or a referenced definition no value matches: the branch is left out; a definition `true` allows anything", () => {
    expect(grammarSchema({ anyOf: [{ type: "string" }, { allOf: [{ type: "string" }, { type: "integer" }] }] }, "p")).toEqual({ oneOf: [{ type: "string" }] });
    expect(grammarSchema({ $defs: { D: true }, type: "string", allOf: [{ $ref: "#/$defs/D" }] }, "p")).not.toHaveProperty("allOf");
    expect(status(() => grammarSchema({ $defs: { D: false }, type: "string", allOf: [{ $ref: "#/$defs/D" }] }, "p"))).toBe(400);
  });
  test("definitions that each allOf the next one twice (2^40 parts inlined) are a quick 400, not a stall", () => {
    const defs = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`d${i}`, i === 39 ? { type: "object", properties: { a: { type: "string" } } }
      : { allOf: [{ $ref: `#/$defs/d${i + 1}` }, { $ref: `#/$defs/d${i + 1}` }, { type: "object" }] }]));
    let caught: { status?: number; message?: string } = {};
    try { grammarSchema({ $defs: defs, $ref: "#/$defs/d0" }, "p"); } catch (e) { caught = e as typeof caught; }
    expect([caught.status, caught.message]).toEqual([400, expect.stringContaining("expands to more than 20000 parts")]);
    // Many differently spelled references to one large part ("properties" with some letters %-escaped): each is
    // copied once, so 1024 spellings of a 3000-property object would be three million copies.
    const wide = { type: "object", properties: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`p${i}`, { type: "string" }])) };
    const spell = (bits: number) => [..."properties"].map((ch, j) => bits & (1 << j) ? `%${ch.charCodeAt(0).toString(16)}` : ch).join("");
    const refs = Object.fromEntries(Array.from({ length: 1024 }, (_, i) => [`r${i}`, { $ref: `#/${spell(i)}/x` }]));
    caught = {};
    try { grammarSchema({ properties: { x: wide, ...refs } }, "p"); } catch (e) { caught = e as typeof caught; }
    expect([caught.status, caught.message]).toEqual([400, expect.stringContaining("expands to more than 20000 parts")]);
  }, 30_000); // without the bounds the first never ends
  test("what cannot be rewritten is a 400 naming where", () => {
    const where = (schema: Record<string, unknown>) => { try { grammarSchema(schema, "p"); return "accepted"; } catch (e) { return (e as { param?: string }).param; } };
    expect(where({ allOf: [{ type: "string" }, { type: "integer" }] })).toBe("p.allOf[1]"); // no value is both
    expect(where({ anyOf: [{ type: "string" }], oneOf: [{ type: "null" }] })).toBe("p.anyOf.oneOf");
    // nine two-branch unions that must all hold are 512 branches (twelve were a 3 MB grammar): a 400; eight are 256
    const unions = (n: number) => ({ type: "object", allOf: Array.from({ length: n }, (_, i) => ({ anyOf: [{ required: [`a${i}`] }, { required: [`b${i}`] }] })) });
    expect(where(unions(9))).toBe("p.allOf[8]");
    expect(where(unions(8))).toBe("accepted");
    expect(where({ $defs: { n: { allOf: [{ $ref: "#/$defs/n" }, { type: "object" }] } }, properties: { a: { $ref: "#/$defs/n" } } })).toBe("p.$defs.n.allOf[0].$ref");
    expect(where({ allOf: [false] })).toBe("p.allOf[0]");
  });
});
