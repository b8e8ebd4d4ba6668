/**
 * This stop's fixes the way a user meets them: the compiled binary over plain HTTP. A stop string equal to a redacted
 * secret (or running into one) no longer cuts the answer, so a right and a wrong guess read the same; INT32_MAX in a
 * json_schema string is a number, not an address; a Persian message with its ZWNJ is answered.
 */
import { expect, test } from "bun:test";
import { sdkBinary } from "./binary-server";

const srv = sdkBinary();
const KEY = "AKIAIOSFODNN7EXAMPLE";

async function post(body: object): Promise<{ status: number; json: { choices?: { message: { content: string }; finish_reason: string }[] } }> {
  const r = await fetch(`${srv.server.baseURL}/v1/chat/completions`, { method: "POST",
    headers: { authorization: `Bearer ${srv.server.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "x" }], ...body }) });
  return { status: r.status, json: await r.json() as never };
}
const constFormat = (text: string) => ({ type: "json_schema", json_schema: { name: "s",
  schema: { type: "object", properties: { a: { const: text } }, required: ["a"], additionalProperties: false } } });

test("a stop string cannot tell a redacted key: right and wrong guesses read the same; a stop in the sent text still cuts", async () => {
  const ask = (stop: string[]) => post({ max_tokens: 200, temperature: 0, seed: 1, stop, response_format: constFormat(`x ${KEY} y z`) });
  const plain = (await ask([])).json.choices![0]!;
  expect(plain.message.content).toContain("[REDACTED:aws-access-token] y z");
  for (const stop of [KEY, KEY.slice(0, -1) + "F", "AKIAIOSF", "EXAMPLE y"]) {
    const c = (await ask([stop])).json.choices![0]!;
    expect({ stop, content: c.message.content, finish: c.finish_reason }).toEqual({ stop, content: plain.message.content, finish: plain.finish_reason });
  }
  const cut = (await ask([" y z"])).json.choices![0]!;
  expect([cut.message.content, cut.finish_reason]).toEqual([plain.message.content.slice(0, plain.message.content.indexOf(" y z")), "stop"]);
});

test("INT32_MAX in a strict json_schema string stays as written; a private address as a URL's integer host does not", async () => {
  const r = await post({ max_tokens: 120, temperature: 0, response_format: constFormat("2147483647 and 0x7fffffff") });
  expect(JSON.parse(r.json.choices![0]!.message.content)).toEqual({ a: "2147483647 and 0x7fffffff" });
  const url = await post({ max_tokens: 120, temperature: 0, response_format: constFormat("see http://3232235521/admin") });
  expect(url.json.choices![0]!.message.content).toContain("http://[REDACTED:internal-ip]/admin");
});

test("ordinary Persian and Hebrew text with its ZWNJ and RLM is answered, not refused as invisible text", async () => {
  for (const content of ["می\u200Cخواهم", "שלום\u200F!"]) {
    const r = await fetch(`${srv.server.baseURL}/v1/chat/completions`, { method: "POST",
      headers: { authorization: `Bearer ${srv.server.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", max_tokens: 1, messages: [{ role: "user", content }] }) });
    expect([content, r.status]).toEqual([content, 200]);
  }
});
