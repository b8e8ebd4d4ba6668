/**
 * response_format json_schema, on the real engine over HTTP: what a red team found the grammar got wrong.
 * - A `required` name the schema does not list was left out (`{}` for `{"required": ["a"]}`): the answer did not
 *   match the schema. Now it is written, its value what additionalProperties allows; with additionalProperties false
 *   no value can match: a 400.
 * - A const, enum value or property name with a control character other than tab, newline and return was written raw
 *   by node-llama-cpp: a 200 whose JSON does not parse. Now a 400 naming it.
 * - A minimum above llama.cpp's 2,000 repetitions failed in its grammar parser, which prints the whole grammar (the
 *   schema's values with it) to stderr: now a 400 naming it before a grammar is built (the binary's stderr is checked
 *   in tests/conformance/redteam-binary.test.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { listenApp, makeApp } from "../helpers";

let ctx: Awaited<ReturnType<typeof makeApp>>;
let base: string;
beforeAll(async () => {
  ctx = await makeApp({ config: { rateLimit: { rpm: 0, tpm: 0 } } });
  base = listenApp(ctx.app);
});
afterAll(async () => { await ctx.app.stop(true); });

async function answer(schema: object): Promise<{ status: number; json?: unknown; error?: { param: string; message: string } }> {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", max_tokens: 200, temperature: 0, messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "s", schema } } }),
  });
  const body = (await r.json()) as { choices?: { message: { content: string } }[]; error?: { param: string; message: string } };
  return r.status === 200 ? { status: 200, json: JSON.parse(body.choices![0]!.message.content) } : { status: r.status, error: body.error };
}
const at = (path: string) => `response_format.json_schema.schema${path}`;

test("a required name the schema does not list is written, as additionalProperties allows; none allowed: 400", async () => {
  expect((await answer({ type: "object", properties: { a: { const: "q" } }, required: ["a", "ghost"] })).json).toEqual({ a: "q", ghost: null });
  expect((await answer({ type: "object", required: ["ghost"] })).json).toEqual({ ghost: null });
  const typed = (await answer({ type: "object", properties: { a: { const: "q" } }, required: ["ghost"], additionalProperties: { type: "integer" } })).json as Record<string, unknown>;
  expect(Number.isInteger(typed.ghost)).toBe(true);
  const none = await answer({ type: "object", properties: {}, required: ["ghost"], additionalProperties: false });
  expect([none.status, none.error?.param]).toEqual([400, at(".required")]);
});

test("control characters the grammar would write raw: 400 naming where; tab, newline and return are written escaped", async () => {
  for (const [schema, param] of [
    [{ type: "object", properties: { k: { const: "a\u0001b" } }, required: ["k"] }, ".properties.k.const"],
    [{ type: "object", properties: { k: { enum: ["ok", "x\by"] } }, required: ["k"] }, ".properties.k.enum"],
    [{ type: "object", properties: { k: { const: { inner: "\f" } } }, required: ["k"] }, ".properties.k.const"],
    [{ type: "object", properties: { "k\u0002": { type: "integer" } } }, ".properties"],
  ] as const) {
    const r = await answer(schema);
    expect([r.status, r.error?.param]).toEqual([400, at(param)]);
  }
  expect((await answer({ type: "object", properties: { k: { const: "a\tb\nc\rd" } }, required: ["k"] })).json).toEqual({ k: "a\tb\nc\rd" });
});

test("a minimum above 500 repetitions: 400 naming it; 500 is built, also where a string's rule is written first", async () => {
  for (const [k, schema] of [["minLength", { type: "string" }], ["minItems", { type: "array", items: { type: "integer" } }],
    ["minProperties", { type: "object", additionalProperties: true }]] as const) {
    const r = await answer({ type: "object", properties: { pad: { ...schema, [k]: 501 } }, required: ["pad"] });
    expect([r.status, r.error?.param]).toEqual([400, at(`.properties.pad.${k}`)]);
    // at the root: the grammar's first rule repeats the string's character rules, two of them (2 x 2,000 failed)
    const root = await fetch(`${base}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", max_tokens: 2, messages: [{ role: "user", content: "x" }],
        response_format: { type: "json_schema", json_schema: { name: "s", schema: { ...schema, [k]: 500 } } } }),
    });
    expect([root.status, k]).toEqual([200, k]);
  }
});

// Red team: a 245 KB enum schema held the event loop ~0.85 s while its grammar was built, once per choice (n=16:
// 12.8 s of /health waits for one request).
test("more than 1,000 enum values in a schema (OpenAI's limit): 400 naming where; 1,000 are built", async () => {
  const values = (n: number) => Array.from({ length: n }, (_, i) => `v${i}`);
  const over = await answer({ type: "object", properties: { a: { enum: values(600) }, b: { enum: values(401) } }, required: ["a", "b"] });
  expect([over.status, over.error?.param]).toEqual([400, at(".properties.b.enum")]);
  expect(over.error?.message).toContain("more than 1000 enum values");
  // A request's tools share the count: one grammar is made of all their parameters.
  const tool = (name: string, n: number) => ({ type: "function", function: { name, parameters: { type: "object", properties: { a: { enum: values(n) } } } } });
  const tools = await fetch(`${base}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "x" }], tools: [tool("t1", 600), tool("t2", 401)] }),
  });
  expect(tools.status).toBe(400);
  expect(((await tools.json()) as { error: { param: string } }).error.param).toBe("tools[1].function.parameters.properties.a.enum");
  const ok = await answer({ type: "object", properties: { a: { enum: values(1000) } }, required: ["a"] });
  expect(ok.status).toBe(200);
  expect(values(1000)).toContain((ok.json as { a: string }).a);
});

test("a schema's grammar is built once for a request's n choices, and not again for the next request with the same schema", async () => {
  const llama = (ctx.engine as unknown as { llama: { createGrammarForJsonSchema(s: unknown): Promise<unknown> } }).llama;
  const original = llama.createGrammarForJsonSchema;
  let builds = 0;
  llama.createGrammarForJsonSchema = function (this: unknown, s: unknown) { builds++; return original.call(this, s); };
  try {
    const schema = { type: "object", properties: { once: { enum: ["a", "b", "c"] } }, required: ["once"] };
    const ask = () => fetch(`${base}/v1/chat/completions`, {
      method: "POST", headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", n: 4, max_tokens: 20, messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { name: "s", schema } } }),
    });
    const first = (await (await ask()).json()) as { choices: { message: { content: string } }[] };
    expect(first.choices.map((c) => Object.keys(JSON.parse(c.message.content)))).toEqual([["once"], ["once"], ["once"], ["once"]]);
    expect(builds).toBe(1);
    expect((await ask()).status).toBe(200);
    expect(builds).toBe(1);
  } finally {
    llama.createGrammarForJsonSchema = original;
  }
});
