/** followableRefs: every in-schema reference becomes one node-llama-cpp follows ("#/$defs/<name>" at the root). */
import { describe, expect, test } from "bun:test";
import { checkJsonSchema, followableRefs } from "../../src/server/openai/json-schema";

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
  test("a schema with no references is returned as is; checkJsonSchema returns the followable one", () => {
    const plain = { type: "object", properties: { a: { type: "string" } } };
    expect(followableRefs(plain)).toBe(plain);
    expect(checkJsonSchema({ items: { $ref: "#/definitions/x" }, definitions: { x: { type: "null" } } }, [], "p"))
      .toEqual({ items: { $ref: "#/$defs/ref1" }, definitions: { x: { type: "null" } }, $defs: { ref1: { type: "null" } } });
  });
});
