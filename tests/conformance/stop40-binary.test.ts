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

test("README claims audit: secret-named key assignments are caught (the name stays); a call assigned is code; an encoded internal address is caught", async () => {
  const value = "Zx9Qw3Er7Ty1Ui5Op2As8Df4";
  for (const name of ["SECRET_KEY=", "private_key=", "encryptionKey = ", "api_key: "]) {
    expect(await forced(`${name}${value}`)).toBe(`${name}[REDACTED:generic-high-entropy]`);
  }
  expect(await forced("clientSecret: getPasswordFromVault(id)")).toBe("clientSecret: getPasswordFromVault(id)");
  expect(await forced(Buffer.from("192.168.100.200:8080").toString("base64"))).toBe("[REDACTED:internal-ip]");
  expect(await forced(Buffer.from("http://db.corp/admin/login").toString("base64"))).toBe("[REDACTED:internal-host]");
});

// Fix-attack run on the above: `key` as a name redacted S3 keys, cache keys, label keys, UUIDs, and in a call's
// arguments swallowed `key": "` with the value (JSON that no longer parsed); a letters-only secret before `(` read as a call.
test("ordinary keys stay; a secret in a call's arguments is redacted with the JSON intact; a random name before ( is no call", async () => {
  for (const text of ["- key: app.kubernetes.io/name", "primary_key = user_account_identifier",
    "s3.put_object(Bucket='reports', Key='uploads/2024/03/report-final.pdf', Body=data)", "const cacheKey = 'dashboard-widgets-v3-en-US';",
    "Idempotency-Key: 3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f", "const encryptionKey = CryptoJS.enc.Utf8.parse(secret);"]) {
    expect(await forced(text)).toBe(text);
  }
  // A second fix-attack run: code whose names hold acronyms is code; keys named by credential words and .env keys are secrets.
  for (const text of ["auth = requests.auth.HTTPDigestAuth(user, password)", "token = JWTManager.create_access_token(identity)"]) expect(await forced(text)).toBe(text);
  for (const name of ["AccountKey=", "HMAC_KEY=", "APP_KEY=", "x-functions-key: "]) {
    expect(await forced(`${name}Zx9Qw3Er7Ty1Ui5Op2As8Df4`)).toBe(`${name}[REDACTED:generic-high-entropy]`);
  }
  const properties = { key: { const: "users/1234/profile-picture.png" }, api_key: { const: "Zx9Qw3Er7Ty1Ui5Op2As8Df4" }, port: { const: 2130706433 } };
  const r = await post({ max_tokens: 400, tool_choice: { type: "function", function: { name: "kv_set" } },
    tools: [{ type: "function", function: { name: "kv_set", parameters: { type: "object", properties, required: Object.keys(properties), additionalProperties: false } } }] });
  expect(JSON.parse(r.json.choices![0]!.message.tool_calls![0]!.function.arguments))
    .toEqual({ key: "users/1234/profile-picture.png", api_key: "[REDACTED:generic-high-entropy]", port: 2130706433 });
});

// Responses/completions/embeddings fidelity run.
async function call(path: string, body: object) {
  const r = await fetch(`${srv.server.baseURL}${path}`, { method: "POST",
    headers: { authorization: `Bearer ${srv.server.key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() as { error?: { code: string; param: string }; data?: unknown[] } };
}

test("embeddings: an input of the context size, or one less, is a 400 context_length_exceeded (a 500); 300 inputs are taken (256 was the bound)", async () => {
  const max = (await call("/tokenize", { model: "tiny", prompt: "x" })).json as unknown as { max_model_len: number };
  for (const n of [max.max_model_len, max.max_model_len - 1]) {
    const r = await call("/v1/embeddings", { model: "tiny", input: Array.from({ length: n }, () => 300) });
    expect([n, r.status, r.json.error?.code]).toEqual([n, 400, "context_length_exceeded"]);
  }
  const ok = await call("/v1/embeddings", { model: "tiny", input: Array.from({ length: 300 }, (_, i) => `doc ${i}`) });
  expect([ok.status, ok.json.data?.length, ok.json.error]).toEqual([200, 300, undefined]);
});

test("Responses: stream_options without stream, or with a field the Responses API lacks, is a 400", async () => {
  for (const body of [{ stream_options: { include_obfuscation: false } }, { stream: true, stream_options: { foo: 1 } }]) {
    const r = await call("/v1/responses", { model: "tiny", input: "x", max_output_tokens: 1, ...body });
    expect([r.status, r.json.error?.param]).toEqual([400, "stream_options" + ("foo" in body.stream_options ? ".foo" : "")]);
  }
});

// Fix-attack run on the schema rewrites: a recursive $ref with OpenAPI's `nullable` beside it became a 400 (any keyword
// beside a $ref forced inlining), as did a scalar type list beside a 200-branch union and a minProperties patternProperties meet.
test("schemas that worked before the rewrites still do: a recursive $ref with nullable, a type list beside a large union, patternProperties", async () => {
  const tree = { type: "object", properties: { root: { $ref: "#/$defs/Node", nullable: true } }, required: ["root"],
    $defs: { Node: { type: "object", properties: { v: { type: "string", maxLength: 4 }, kids: { type: "array", maxItems: 1, items: { $ref: "#/$defs/Node", nullable: true } } }, required: ["v", "kids"] } } };
  const union = { type: "object", properties: { a: { type: ["string", "null"], maxLength: 20, anyOf: Array.from({ length: 200 }, (_, i) => ({ const: `v${i}` })) } }, required: ["a"] };
  const pattern = { type: "object", additionalProperties: false, patternProperties: { "^S_": { type: "string" } }, minProperties: 1 };
  for (const schema of [tree, union, pattern]) {
    const r = await post({ max_tokens: 30, response_format: schemaFormat(schema) });
    expect([r.status, r.json.error]).toEqual([200, undefined]);
  }
});
