/**
 * Defects a red team found by attacking the compiled binary over HTTP (session of 2026-12-01), checked the same way:
 * - With `responseScan.action: "block"` a stream went on past the finding: the client got
 *   `hello [REDACTED:aws-access-token] and then many more words…` before `content_filter`.
 * - A secret assigned to a longer name (`DB_PASSWORD=…`, `GITHUB_TOKEN=…`, `clientSecret: …`) was not read as one:
 *   the name rules wanted a word boundary before `password`/`token`/`secret`.
 * - In a JSON answer the scanner read the JSON text, not what its reader decodes: an AWS key id spaced out with tabs
 *   (written `A\tK\tI…`) or `the password is "…"` (written with `\"`) passed.
 * - Deep JSON inside a tool result or call arguments (strings, out of the body check's sight) blocked the event loop
 *   for seconds, took gigabytes and, deeper, overflowed the stack into a 500.
 * The model writes each secret itself (a json_schema const, temperature 0), as a leak would come.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startBinary, type BinaryServer } from "./binary-server";

let server: BinaryServer;
beforeAll(async () => {
  server = await startBinary([], [], { APPLIANCE_RESPONSE_SCAN__ACTION: "block" });
});
afterAll(async () => { expect(await server.stop()).toBe(0); });

const AWS = "AKIA" + "IOSFODNN7EXAMPLE"; // split so this file is not itself a finding
const forced = (value: string) => ({
  model: "tiny", max_tokens: 400, temperature: 0, messages: [{ role: "user", content: "the key" }],
  response_format: { type: "json_schema", json_schema: { name: "k", schema: { type: "object", properties: { key: { const: value } }, required: ["key"] } } },
});
const post = (path: string, body: object) => fetch(`${server.baseURL}${path}`, {
  method: "POST", headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json" }, body: JSON.stringify(body),
});

/** One chat answer, or a stream's text and its finish reason. */
async function chat(body: object, stream: boolean): Promise<{ text: string; finish: string }> {
  const r = await post("/v1/chat/completions", { ...body, stream });
  expect(r.status).toBe(200);
  if (!stream) {
    const c = ((await r.json()) as { choices: { message: { content: string }; finish_reason: string }[] }).choices[0]!;
    return { text: c.message.content ?? "", finish: c.finish_reason };
  }
  let text = "", finish = "";
  for (const line of (await r.text()).split("\n")) {
    if (!line.startsWith("data: {")) continue;
    const c = (JSON.parse(line.slice(6)) as { choices: { delta: { content?: string }; finish_reason: string | null }[] }).choices[0];
    text += c?.delta.content ?? "";
    finish = c?.finish_reason ?? finish;
  }
  return { text, finish };
}

describe("block mode", () => {
  const value = `hello ${AWS} and then many more words follow the secret here`;
  test("a stream ends at the first finding: the text before it, nothing of it or after it, then content_filter", async () => {
    const { text, finish } = await chat(forced(value), true);
    expect(finish).toBe("content_filter");
    expect(text).toMatch(/^\{\s*"key"\s*:\s*"hello $/); // the grammar lets the model put whitespace in the JSON
  }, 120_000);
  test("one answer: no text at all, content_filter", async () => {
    expect(await chat(forced(value), false)).toEqual({ text: "", finish: "content_filter" });
  }, 120_000);
});

describe("a secret assigned to a longer name is a finding", () => {
  for (const [name, value] of [["DB_PASSWORD=", "S3cr3t!Pass99"], ["GITHUB_TOKEN=", "Zk39xLq0Vb7Hs2Nw8Pc4Rt6Ym1"], ["clientSecret: ", "q8Zr2LxP0vN7wKcT5yHbM3sD"]] as const) {
    for (const stream of [false, true]) {
      test(`${name}… (${stream ? "streamed" : "one answer"})`, async () => {
        const { text, finish } = await chat(forced(`export ${name}${value}`), stream);
        expect(finish).toBe("content_filter");
        expect(text).not.toContain(value.slice(0, 6));
      }, 120_000);
    }
  }
});

describe("in a JSON answer, what its reader decodes is scanned", () => {
  for (const [what, value] of [["an AWS key id spaced with tabs", [...AWS].join("\t")], ["an AWS key id spaced with newlines", [...AWS].join("\n")],
    ["a quoted password", 'The password is "hunter2hunter2"']] as const) {
    for (const stream of [false, true]) {
      test(`${what} (${stream ? "streamed" : "one answer"})`, async () => {
        const { text, finish } = await chat(forced(value), stream);
        expect(finish).toBe("content_filter");
        expect(text).not.toContain("hunter2");
        expect(text).not.toContain("K\\tI");
        expect(text).not.toContain("K\\nI");
      }, 120_000);
    }
  }
});

test("deep JSON in a tool result or call arguments: 400 json_too_deep naming the field", async () => {
  const deep = "[".repeat(20_000) + "]".repeat(20_000);
  const call = { id: "c1", type: "function", function: { name: "f", arguments: "{}" } };
  const messages = (result: string, args = "{}") => [{ role: "user", content: "hi" },
    { role: "assistant", content: null, tool_calls: [{ ...call, function: { name: "f", arguments: args } }] }, { role: "tool", tool_call_id: "c1", content: result }];
  for (const [body, param] of [
    [{ model: "tiny", max_tokens: 2, messages: messages(deep) }, "messages[2].content"],
    [{ model: "tiny", max_tokens: 2, messages: messages("[]", deep) }, "messages[1].tool_calls[0].function.arguments"],
  ] as const) {
    const r = await post("/v1/chat/completions", body);
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: object }).error).toMatchObject({ code: "json_too_deep", param });
  }
  expect((await fetch(`${server.baseURL}/health`)).status).toBe(200);
}, 120_000);

test("a schema llama.cpp's grammar parser would refuse is a 400 before it: the schema's values never reach stderr", async () => {
  const marker = "patient John Doe SSN 078-05-1120";
  const schema = { type: "object", properties: { note: { const: marker }, pad: { type: "string", minLength: 100_000 } }, required: ["note", "pad"] };
  const r = await post("/v1/chat/completions", { model: "tiny", max_tokens: 4, messages: [{ role: "user", content: "x" }],
    response_format: { type: "json_schema", json_schema: { name: "s", schema } } });
  expect(r.status).toBe(400);
  expect(((await r.json()) as { error: object }).error).toMatchObject({ param: "response_format.json_schema.schema.properties.pad.minLength" });
  expect((await fetch(`${server.baseURL}/health`)).status).toBe(200); // stderr has been written by now, if at all
  expect(server.errLog()).not.toContain(marker);
  expect(server.log()).not.toContain(marker);
}, 120_000);
