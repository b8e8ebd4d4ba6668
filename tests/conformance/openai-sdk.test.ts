/**
 * The official `openai` JS SDK against the compiled binary: what a client
 * written for OpenAI does, unchanged.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { startBinary, type BinaryServer } from "./binary-server";

let server: BinaryServer;
let client: OpenAI;

beforeAll(async () => {
  server = await startBinary();
  client = new OpenAI({ apiKey: server.key, baseURL: `${server.baseURL}/v1`, maxRetries: 0 });
});
afterAll(async () => { expect(await server.stop()).toBe(0); });

describe("structured output in the binary (grammars are embedded)", () => {
  test("json_object → JSON", async () => {
    const r = await client.chat.completions.create({
      model: "tiny", messages: [{ role: "user", content: "json please" }], max_tokens: 64, response_format: { type: "json_object" }, temperature: 0,
    });
    expect(() => JSON.parse(r.choices[0]!.message.content!)).not.toThrow();
  });
  test("json_schema without a schema → JSON", async () => {
    const r = await client.chat.completions.create({
      model: "tiny", messages: [{ role: "user", content: "json please" }], max_tokens: 64, temperature: 0,
      response_format: { type: "json_schema", json_schema: { name: "anything" } },
    });
    expect(() => JSON.parse(r.choices[0]!.message.content!)).not.toThrow();
  });
  test("completions with json_object → JSON", async () => {
    const r = await client.completions.create({ model: "tiny", prompt: "{", max_tokens: 64, temperature: 0, response_format: { type: "json_object" } } as never);
    expect(() => JSON.parse((r as OpenAI.Completion).choices[0]!.text)).not.toThrow();
  });
});
