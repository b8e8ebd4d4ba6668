/** OpenAI's semantics where they differ from node-llama-cpp's: sampling defaults, unit embeddings, sane structured output. */
import { describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { sdkApp } from "./sdk-app";

const srv = sdkApp();

const error = (p: Promise<unknown>) => p.then(() => { throw new Error("expected an error"); }, (e) => e as InstanceType<typeof OpenAI.APIError>);
const chat = (extra: Partial<OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming> = {}) =>
  srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "tell me" }], max_tokens: 16, ...extra });

describe("sampling defaults are OpenAI's", () => {
  test("no temperature and no seed: identical requests get different samples", async () => {
    const texts = new Set<string>();
    for (let i = 0; i < 4; i++) texts.add((await chat()).choices[0]!.message.content!);
    expect(texts.size).toBeGreaterThan(1);
  });
  test("a seed still reproduces the sample (default temperature)", async () => {
    const a = await chat({ seed: 42 }), b = await chat({ seed: 42 });
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content!);
    // ...and it is a sample, not the greedy answer
    const texts = new Set<string>();
    for (const seed of [1, 2, 3, 4]) texts.add((await chat({ seed })).choices[0]!.message.content!);
    expect(texts.size).toBeGreaterThan(1);
  });
});

describe("embeddings", () => {
  test("are unit length, float and base64", async () => {
    const norm = (v: number[]) => Math.hypot(...v);
    const f = await srv.client.embeddings.create({ model: "tiny", input: ["hello world", "json"], encoding_format: "float" });
    for (const d of f.data) expect(norm(d.embedding)).toBeCloseTo(1, 5);
    const b = await srv.client.embeddings.create({ model: "tiny", input: "hello world" }); // the SDK asks for base64 and decodes it
    expect(norm(b.data[0]!.embedding)).toBeCloseTo(1, 5);
  });
  test("too many inputs → 400 naming input", async () => {
    const e = await error(srv.client.embeddings.create({ model: "tiny", input: Array.from({ length: 2049 }, () => "x") }));
    expect(e.status).toBe(400);
    expect(e.param).toBe("input"); // past OpenAI's 2,048 (the schema's bound; maxEmbeddingInputs may set a lower one)
  });
});

describe("structured output", () => {
  const schemaFormat = (schema: Record<string, unknown>) =>
    ({ type: "json_schema" as const, json_schema: { name: "out", schema } });

  test("integers are integers a JSON parser keeps exactly; numbers are finite", async () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const r = await chat({ seed, temperature: 1, max_tokens: 300, response_format: schemaFormat({ type: "object", properties: { n: { type: "integer" }, x: { type: "number" } }, required: ["n", "x"] }) });
      const v = JSON.parse(r.choices[0]!.message.content!);
      expect(Number.isSafeInteger(v.n)).toBe(true);
      expect(Number.isFinite(v.x)).toBe(true);
    }
  });
  test("an unknown type → 400 naming where it is", async () => {
    const e = await error(chat({ response_format: schemaFormat({ type: "object", properties: { a: { type: "hiccup" } } }) }));
    expect(e.status).toBe(400);
    expect(e.param).toBe("response_format.json_schema.schema.properties.a.type");
  });
  test("a union of no branch or an empty type list → 400 naming it; an array position no value may take ends the array", async () => {
    // node-llama-cpp wrote nothing for an empty union ({"a":} does not parse) and null for an empty type list
    for (const [a, key] of [[{ anyOf: [] }, "anyOf"], [{ oneOf: [] }, "oneOf"], [{ type: [] }, "type"]] as const) {
      const e = await error(chat({ response_format: schemaFormat({ type: "object", properties: { a }, required: ["a"] }) }));
      expect([e.status, e.param]).toEqual([400, `response_format.json_schema.schema.properties.a.${key}`]);
    }
    // it read `false` as a schema and wrote null there: [true, null] where only [] or [true] match
    const schema = {
      type: "object", required: ["a", "b"],
      properties: { a: { type: "array", items: false }, b: { type: "array", prefixItems: [{ type: "boolean" }, false] } },
    };
    for (const seed of [1, 2, 3]) {
      const v = JSON.parse((await chat({ seed, temperature: 1, max_tokens: 60, response_format: schemaFormat(schema) })).choices[0]!.message.content!);
      expect(v.a).toEqual([]);
      expect(v.b.length).toBeLessThanOrEqual(1);
      for (const x of v.b) expect(typeof x).toBe("boolean");
    }
  });
  test("a $ref that points nowhere, or outside the schema → 400 naming it; one into $defs is followed", async () => {
    // the last two point at data (a const's value, an array's length): node-llama-cpp generated null for them
    for (const ref of ["#/nope", "#/$defs/missing", "https://example.com/s.json", "#/%zz", "#/properties/b/const", "#/properties/b/enum/length"]) {
      const e = await error(chat({ response_format: schemaFormat({ type: "object", properties: { a: { $ref: ref }, b: { const: 5, enum: [5] } } }) }));
      expect([e.status, e.param]).toEqual([400, "response_format.json_schema.schema.properties.a.$ref"]);
    }
    const schema = { type: "object", $defs: { flag: { type: "boolean" } }, properties: { a: { $ref: "#/$defs/flag" } }, required: ["a"] };
    const r = await chat({ seed: 1, max_tokens: 40, response_format: schemaFormat(schema) });
    expect(typeof JSON.parse(r.choices[0]!.message.content!).a).toBe("boolean");
  });
  test("schemas as Pydantic and zod-to-json-schema write them are followed: #/definitions refs, property pointers, anyOf, allOf, no type", async () => {
    // node-llama-cpp generated "any JSON" for a $ref not spelled #/$defs/<name> (a warning on stderr) and `null` for
    // anyOf and allOf: answers the schema did not describe.
    const schema = {
      type: "object", additionalProperties: false, required: ["a", "b", "c", "d", "e"],
      definitions: { n: { type: "integer" } },
      properties: {
        a: { $ref: "#/definitions/n" }, b: { $ref: "#/properties/a" },
        c: { anyOf: [{ type: "integer" }, { type: "boolean" }] }, d: { allOf: [{ $ref: "#/definitions/n" }], description: "v1" },
        e: { properties: { x: { type: "boolean" } }, required: ["x"] }, // no "type": its keywords say object
      },
    };
    const fits = (seed: number, v: Record<string, unknown>) => ({
      seed, a: Number.isSafeInteger(v.a), b: Number.isSafeInteger(v.b), c: Number.isSafeInteger(v.c) || typeof v.c === "boolean", d: Number.isSafeInteger(v.d),
      e: typeof (v.e as { x?: unknown } | null)?.x === "boolean",
    });
    const all = (seed: number) => ({ seed, a: true, b: true, c: true, d: true, e: true });
    for (const seed of [1, 2]) {
      const r = await chat({ seed, temperature: 1, max_tokens: 300, response_format: schemaFormat(schema) });
      expect(fits(seed, JSON.parse(r.choices[0]!.message.content!))).toEqual(all(seed));
    }
    for (const seed of [1]) {
      const r = await chat({ seed, temperature: 1, max_tokens: 300, tool_choice: { type: "function", function: { name: "put" } },
        tools: [{ type: "function", function: { name: "put", parameters: schema } }] });
      expect(r.choices[0]!.finish_reason).toBe("tool_calls");
      const call = r.choices[0]!.message.tool_calls![0]! as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
      expect(fits(seed, JSON.parse(call.function.arguments))).toEqual(all(seed));
    }
  });
  test("parts that must all hold are met exactly: an enum of objects beside a oneOf, and one property's values in two allOf parts", async () => {
    // The enum's branches replaced the oneOf (any of eight objects came out), and the second allOf part's property
    // replaced the first's ("gh" came out): only {n: 3} and "cd" match the schema.
    const schema = {
      type: "object", required: ["pick", "word"], additionalProperties: false,
      properties: {
        pick: { oneOf: [{ type: "object", properties: { n: { const: 3 } }, required: ["n"] }], enum: [0, 1, 2, 3, 4, 5, 6, 7].map((n) => ({ n })) },
        word: { type: "string" }, // listed here too: the closed object (additionalProperties false) allows no other name
      },
      allOf: [{ properties: { word: { enum: ["ab", "cd", "ef"] } } }, { properties: { word: { enum: ["cd", "gh"] } } }],
    };
    const picked: unknown[] = [];
    for (const seed of [1, 2, 3, 4]) {
      const r = await chat({ seed, temperature: 1, max_tokens: 60, response_format: schemaFormat(schema) });
      picked.push(JSON.parse(r.choices[0]!.message.content!));
    }
    expect(picked).toEqual(Array.from({ length: 4 }, () => ({ pick: { n: 3 }, word: "cd" })));
  });
  test("a base object with a union of references, a draft-07 tuple and an object const (helper F3's fuzz)", async () => {
    // The base's id was lost (node-llama-cpp follows a $ref and ignores what is beside it); the tuple was a 400
    // ("must be an object"); the object const a 400 naming response_format even in a tool's parameters.
    const schema = {
      $defs: { A: { type: "object", properties: { x: { type: "integer" } }, required: ["x"] }, B: { type: "object", properties: { y: { type: "boolean" } }, required: ["y"] } },
      allOf: [
        { type: "object", required: ["id", "pair"], properties: { id: { type: "integer" }, pair: { type: "array", items: [{ type: "boolean" }, { const: { k: 1 } }], additionalItems: false } } },
        { anyOf: [{ $ref: "#/$defs/A" }, { $ref: "#/$defs/B" }] },
      ],
    };
    const fits = (v: { id?: unknown; pair?: unknown[]; x?: unknown; y?: unknown }) => ({
      id: Number.isSafeInteger(v.id), pair: v.pair?.length === 2 && typeof v.pair[0] === "boolean" && JSON.stringify(v.pair[1]) === '{"k":1}',
      branch: Number.isSafeInteger(v.x) || typeof v.y === "boolean",
    });
    const r = await chat({ seed: 1, temperature: 1, max_tokens: 300, response_format: schemaFormat(schema) });
    expect(r.choices[0]!.finish_reason).toBe("stop");
    expect(fits(JSON.parse(r.choices[0]!.message.content!))).toEqual({ id: true, pair: true, branch: true });
    const t = await chat({ seed: 2, temperature: 1, max_tokens: 300, tool_choice: { type: "function", function: { name: "put" } },
      tools: [{ type: "function", function: { name: "put", parameters: schema } }] });
    expect(t.choices[0]!.finish_reason).toBe("tool_calls");
    const call = t.choices[0]!.message.tool_calls![0]! as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(fits(JSON.parse(call.function.arguments))).toEqual({ id: true, pair: true, branch: true });
  });
  test("an allOf of two unions holds both (a branch of each); before, only the last union was generated", async () => {
    const obj = (k: string, type: string) => ({ type: "object", properties: { [k]: { type } }, required: [k] });
    const schema = { allOf: [{ anyOf: [obj("a", "string"), obj("b", "integer")] }, { anyOf: [obj("c", "boolean"), obj("d", "null")] }] };
    const fits = (v: Record<string, unknown>) => ({
      first: typeof v.a === "string" || Number.isSafeInteger(v.b), second: typeof v.c === "boolean" || (Object.hasOwn(v, "d") && v.d === null),
    });
    // Sampled at temperature 1, a string value may run to max_tokens (finish "length": cut short, not a schema
    // miss; the thread count, adaptive under load, changes the sampled text). Every answer that ends is checked.
    let checked = 0;
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const r = await chat({ seed, temperature: 1, max_tokens: 300, response_format: schemaFormat(schema) });
      if (r.choices[0]!.finish_reason === "length") continue;
      expect({ seed, ...fits(JSON.parse(r.choices[0]!.message.content!)) }).toEqual({ seed, first: true, second: true });
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(2);
  });
  test("a schema node-llama-cpp cannot make a grammar of names where it came from: response_format, or tools", async () => {
    const loop = { $defs: { n: { $ref: "#/$defs/n" } }, type: "object", properties: { a: { $ref: "#/$defs/n" } } }; // n is n: no value
    const e = await error(chat({ response_format: schemaFormat(loop) }));
    expect([e.status, e.param]).toEqual([400, "response_format"]);
    const t = await error(chat({ tool_choice: "required", tools: [{ type: "function", function: { name: "put", parameters: loop } }] }));
    expect([t.status, t.param]).toEqual([400, "tools"]); // it said response_format
  });
  test("a const holding the model's end token → 400, not a cut-off answer", async () => {
    const e = await error(chat({ response_format: schemaFormat({ const: "a<|im_end|>b" }) }));
    expect(e.status).toBe(400);
    expect(e.param).toBe("response_format.json_schema.schema");
  });
});

test("completions: a context overflow names prompt", async () => {
  const e = await error(srv.client.completions.create({ model: "tiny", prompt: "word ".repeat(1500), max_tokens: 1000 }));
  expect(e.code).toBe("context_length_exceeded");
  expect(e.param).toBe("prompt");
});
