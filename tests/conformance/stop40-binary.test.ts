/**
 * This stop's structured-output fixes the way a user meets them: the compiled binary over plain HTTP (what the
 * openai SDK's parse() and the AI SDK's generateObject send). Each answer is checked against what the schema allows.
 */
import { expect, test } from "bun:test";
import { sdkBinary } from "./binary-server";

const srv = sdkBinary();
type Choice = { message: { content: string | null; tool_calls?: { function: { arguments: string } }[] } };

async function post(body: object): Promise<{ status: number; json: { choices?: Choice[]; error?: { message: string; param: string } } }> {
  const r = await fetch(`${srv.server.baseURL}/v1/chat/completions`, { method: "POST",
    headers: { authorization: `Bearer ${srv.server.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "x" }], ...body }) });
  return { status: r.status, json: await r.json() as never };
}
const schemaFormat = (schema: object) => ({ type: "json_schema", json_schema: { name: "x", schema } });

/**
 * Characters as llama.cpp's grammar counts them: it takes an invalid 4-byte UTF-8 sequence, which the text shows as
 * four U+FFFD, for one (README, structured output; the random model writes such bytes).
 */
const chars = (s: string) => [...s.replace(/\uFFFD{4}/g, "?")].length;

/** Every choice's content, parsed (a choice cut by max_tokens would fail the parse: the tests leave room). */
async function objects(schema: object, n = 4, extra: object = {}): Promise<Record<string, unknown>[]> {
  const r = await post({ max_tokens: 120, n, seed: 5, temperature: 1, response_format: schemaFormat(schema), ...extra });
  expect(r.status).toBe(200);
  return r.json.choices!.map((c) => JSON.parse(c.message.content!));
}

test("numbers that read like a loopback address (127.25, 2147483647) stay JSON numbers, streamed or not", async () => {
  const schema = { type: "object", properties: { lon: { const: -127.25 }, max: { const: 2147483647 }, list: { const: [127.5, 2130706433] } },
    required: ["lon", "max", "list"], additionalProperties: false };
  expect(await objects(schema, 1)).toEqual([{ lon: -127.25, max: 2147483647, list: [127.5, 2130706433] }]);
  const r = await fetch(`${srv.server.baseURL}/v1/chat/completions`, { method: "POST",
    headers: { authorization: `Bearer ${srv.server.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", max_tokens: 120, stream: true, messages: [{ role: "user", content: "x" }], response_format: schemaFormat(schema) }) });
  let text = "";
  for (const line of (await r.text()).split("\n")) {
    if (line.startsWith("data: {")) text += JSON.parse(line.slice(6)).choices[0]?.delta?.content ?? "";
  }
  expect(JSON.parse(text)).toEqual({ lon: -127.25, max: 2147483647, list: [127.5, 2130706433] });
  // the same text as prose is still an address
  const prose = await post({ max_tokens: 60, response_format: schemaFormat({ type: "string", enum: ["connect to 127.1 or 2130706433 now"] }) });
  expect(prose.json.choices![0]!.message.content).toBe('"connect to [REDACTED:internal-ip] or [REDACTED:internal-ip] now"');
});

test("a type list of scalars keeps their keywords: [\"string\", \"null\"] with maxLength", async () => {
  const schema = { type: "object", properties: { a: { type: ["string", "null"], maxLength: 2 }, d: { type: ["string"], maxLength: 3 } },
    required: ["a", "d"], additionalProperties: false };
  for (const o of await objects(schema, 6)) {
    expect(o.a === null || (typeof o.a === "string" && chars(o.a) <= 2)).toBe(true);
    expect(chars(o.d as string)).toBeLessThanOrEqual(3);
  }
});

test("maxProperties below the listed properties and maxItems below a tuple's positions are kept; a $ref's sibling constraints apply", async () => {
  const one = { type: "object", properties: { a: { type: "integer" }, b: { type: "integer" }, c: { type: "integer" } }, required: ["a"], maxProperties: 1 };
  for (const o of await objects(one)) expect(Object.keys(o)).toEqual(["a"]);
  const two = { ...one, required: [], maxProperties: 2 };
  for (const o of await objects(two)) expect(Object.keys(o).length).toBeLessThanOrEqual(2);
  const tuple = { type: "object", properties: { t: { type: "array", prefixItems: [{ type: "integer" }, { type: "integer" }, { type: "integer" }], maxItems: 1 } }, required: ["t"], additionalProperties: false };
  for (const o of await objects(tuple)) expect((o.t as unknown[]).length).toBeLessThanOrEqual(1);
  const ref = { $defs: { s: { type: "string" } }, type: "object", properties: { a: { $ref: "#/$defs/s", maxLength: 3 } }, required: ["a"], additionalProperties: false };
  for (const o of await objects(ref)) expect(chars(o.a as string)).toBeLessThanOrEqual(3);
});

test("a schema no object can meet through min/maxProperties is a 400", async () => {
  const few = await post({ max_tokens: 20, response_format: schemaFormat({ type: "object", properties: { a: { type: "integer" } }, minProperties: 3, additionalProperties: false }) });
  expect(few.status).toBe(400);
  expect(few.json.error!.param).toContain("minProperties");
  const many = await post({ max_tokens: 20, response_format: schemaFormat({ type: "object", properties: { a: { type: "integer" }, b: { type: "integer" } }, required: ["a", "b"], maxProperties: 1 }) });
  expect(many.status).toBe(400);
  expect(many.json.error!.param).toContain("maxProperties");
});

test("tool parameters that are not an object schema are a 400 naming them, as at OpenAI", async () => {
  for (const parameters of [{ type: "string", maxLength: 5 }, { type: "array" }, { items: { type: "integer" } }]) {
    const r = await post({ max_tokens: 20, tool_choice: "required", tools: [{ type: "function", function: { name: "f", parameters } }] });
    expect(r.status).toBe(400);
    expect(r.json.error!.param).toBe("tools[0].function.parameters");
  }
  const ok = await post({ max_tokens: 60, tool_choice: "required", tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { n: { type: "integer" } }, required: ["n"], additionalProperties: false } } }] });
  expect(ok.status).toBe(200);
  expect(typeof JSON.parse(ok.json.choices![0]!.message.tool_calls![0]!.function.arguments)).toBe("object");
});

/** The answer the grammar forces: `text` as a JSON string (the response scanner reads it as any other answer). */
async function forced(text: string): Promise<string> {
  const r = await post({ max_tokens: 200, response_format: schemaFormat({ type: "string", enum: [text] }) });
  return JSON.parse(r.json.choices![0]!.message.content!);
}

test("README claims audit: key=… assignments (SECRET_KEY, private_key) are caught; a call assigned is code; an encoded internal address is caught", async () => {
  const value = "Zx9Qw3Er7Ty1Ui5Op2As8Df4";
  for (const name of ["SECRET_KEY=", "key=", "private_key=", "encryptionKey = "]) {
    const out = await forced(`${name}${value}`);
    expect(out).toContain("[REDACTED:generic-high-entropy]");
    expect(out).not.toContain(value);
  }
  expect(await forced("clientSecret: getPasswordFromVault(id)")).toBe("clientSecret: getPasswordFromVault(id)");
  // names, not secrets: Kubernetes label keys, column names
  for (const text of ["- key: app.kubernetes.io/name", "primary_key = user_account_identifier"]) expect(await forced(text)).toBe(text);
  expect(await forced(Buffer.from("192.168.100.200:8080").toString("base64"))).toBe("[REDACTED:internal-ip]");
  expect(await forced(Buffer.from("http://db.corp/admin/login").toString("base64"))).toBe("[REDACTED:internal-host]");
});
