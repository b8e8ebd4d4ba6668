/**
 * This stop's request-path fixes the way a user meets them: the compiled binary, through the official `openai` SDK
 * and plain HTTP (the shutdown answers are checked through the binary in e2e/binary, a full disk and an unreadable
 * models dir in integrity/models-dir-faults, the gateway's scanning in gateway/scan-leaks).
 */
import { expect, test } from "bun:test";
import { sdkBinary } from "./binary-server";

const srv = sdkBinary();
const forced = (answer: string) => ({ type: "json_schema" as const, json_schema: { name: "x", schema: { type: "string", enum: [answer] } } });
const chat = async (content: string, answer: string, stream = false) => {
  const r = await fetch(`${srv.server.baseURL}/v1/chat/completions`, { method: "POST",
    headers: { authorization: `Bearer ${srv.server.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", max_tokens: 400, stream, response_format: forced(answer), messages: [{ role: "user", content }] }) });
  return r.text();
};

// Short forced answers: the tiny model writes them token by token under the grammar (kept small for a loaded CI machine).
const BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMx\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTK";

test("an answer continuing a key the prompt opened is dropped to its END line, streamed or not", async () => {
  for (const stream of [false, true]) {
    const out = await chat("Go on:\n-----BEGIN RSA PRIVATE KEY-----\n", `${BODY}\n-----END RSA PRIVATE KEY-----\nDone.`, stream);
    expect(out).toContain("[REDACTED:private-key]");
    expect(out).not.toContain("u1SU1LfVLPHC");
    expect(out).not.toContain("VTLw7onLRnrq0");
  }
});

test("a key's base64 wrapped over lines and PEM armor in a confusable dash are redacted, streamed or not", async () => {
  const key = "sk-proj-" + "p9qRs2tUvWxYz1AbCdEfGh3IjKlMn4Op";
  const wrapped = Buffer.from(key).toString("base64").match(/.{1,32}/g)!;
  const armor = `-----BEGIN RSA PRIVATE KEY-----\n${BODY}\n-----END RSA PRIVATE KEY-----`.replaceAll("-", "\u02D7");
  expect(wrapped.length).toBe(2);
  for (const stream of [false, true]) {
    const b64 = await chat("x", wrapped.join("\n"), stream);
    expect(b64).toContain("[REDACTED:openai-api-key]");
    for (const line of wrapped) expect(b64).not.toContain(line.slice(0, 12));
    const pem = await chat("x", armor, stream);
    expect(pem).toContain("[REDACTED:private-key]");
    expect(pem).not.toContain("u1SU1LfVLPHC");
  }
});

test("the SDK's own prompt_cache_retention spelling and Responses history fields are taken", async () => {
  const c = await srv.client.chat.completions.create({ model: "tiny", max_tokens: 1, prompt_cache_retention: "in_memory", messages: [{ role: "user", content: "hi" }] });
  expect(c.object).toBe("chat.completion");
  const r = await srv.client.responses.create({ model: "tiny", max_output_tokens: 1, prompt_cache_retention: "in_memory",
    input: [{ role: "user", content: "hi", phase: null }, { type: "function_call", call_id: "c1", name: "f", arguments: "{}", caller: { type: "direct" } },
      { type: "function_call_output", call_id: "c1", output: "1", id: null, status: null }] as never });
  expect(r.object).toBe("response");
});
