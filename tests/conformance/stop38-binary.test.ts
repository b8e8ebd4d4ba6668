/**
 * This stop's request-path fixes the way a user meets them: the compiled binary, through the official `openai` SDK
 * and plain HTTP (the start memo is checked through the binary in integrity/hash-cache-binary and on a live systemd
 * in live/service; the planted files in security/planted-files).
 */
import { expect, test } from "bun:test";
import path from "node:path";
import OpenAI from "openai";
import { sdkBinary } from "./binary-server";

const srv = sdkBinary();
const error = (p: Promise<unknown>) => p.then(() => { throw new Error("expected an error"); }, (e) => e as InstanceType<typeof OpenAI.APIError>);

test("a long prompt refused on its piecewise count says its counts are lower bounds; one counted whole, exact", async () => {
  const long = await error(srv.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello ".repeat(6_000) }], max_tokens: 2 }));
  expect([long.status, long.code]).toEqual([400, "context_length_exceeded"]);
  expect(long.message).toMatch(/you requested at least \d+ tokens \(at least \d+ in the prompt, 2 for the completion\)/);
  const prompt = "word ".repeat(560);
  const n = (await srv.client.completions.create({ model: "tiny", prompt, max_tokens: 1 })).usage!.prompt_tokens;
  const whole = await error(srv.client.completions.create({ model: "tiny", prompt, max_tokens: 1_000 }));
  expect(whole.message).toContain(`you requested ${n + 1_000} tokens (${n} in the prompt, 1000 for the completion)`);
});

test("text parts are joined with a newline, as the same text sent whole", async () => {
  const parts = await srv.client.chat.completions.create({ model: "tiny", max_tokens: 3, temperature: 0,
    messages: [{ role: "user", content: [{ type: "text", text: "end." }, { type: "text", text: "Question" }] }] });
  const whole = await srv.client.chat.completions.create({ model: "tiny", max_tokens: 3, temperature: 0, messages: [{ role: "user", content: "end.\nQuestion" }] });
  expect([parts.usage!.prompt_tokens, parts.choices[0]!.message.content]).toEqual([whole.usage!.prompt_tokens, whole.choices[0]!.message.content]);
});

test("a wrong key: OpenAI's 401 body (invalid_request_error, invalid_api_key), the challenge header, the SDK's AuthenticationError", async () => {
  const r = await fetch(`${srv.server.baseURL}/v1/models`, { headers: { authorization: "Bearer apk_0000000000000000_nope" } });
  expect([r.status, r.headers.get("www-authenticate"), ((await r.json()) as { error: object }).error])
    .toEqual([401, "Bearer", expect.objectContaining({ type: "invalid_request_error", code: "invalid_api_key" })]);
  const sdk = new OpenAI({ apiKey: "apk_0000000000000000_nope", baseURL: `${srv.server.baseURL}/v1`, maxRetries: 0 });
  expect(await error(sdk.models.list())).toBeInstanceOf(OpenAI.AuthenticationError);
});

test("--version names the source digest the start memo is keyed by", () => {
  const bin = path.join(path.dirname(srv.server.stateDir), "appliance");
  expect(Bun.spawnSync([bin, "--version"]).stdout.toString()).toMatch(/^appliance \S+ \(commit \w+, source [0-9a-f]{16}, /);
});
