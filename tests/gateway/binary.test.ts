/**
 * `appliance serve` as a user runs it, in gateway mode: the compiled binary
 * with `upstreams` in its config file serves its own local model and an
 * upstream appliance's model side by side, the upstream key read from an
 * environment variable; a model id that is both local and upstream is a config
 * error (exit 2).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import OpenAI from "openai";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { prepareGateway, runBinary, startGatewayBinary, type GatewayBinary } from "./gateway-binary";

let up: BinaryServer;
let gw: GatewayBinary;
beforeAll(async () => {
  up = await startBinary();
  gw = await startGatewayBinary({ upstreams: [{ url: `${up.baseURL}/v1`, apiKeyEnv: "UPSTREAM_KEY", models: ["tiny"] }] },
    { localModel: true, env: { UPSTREAM_KEY: up.key } });
});
afterAll(async () => {
  expect(await gw?.stop()).toBe(0);
  await up?.stop();
});

test("local and upstream models side by side; /v1/models lists both", async () => {
  const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
  expect((await client.models.list()).data.map((m) => m.id).sort()).toEqual(["local", "tiny"]);
  for (const model of ["local", "tiny"]) {
    const stream = await client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 4, stream: true });
    let finish: string | null = null;
    for await (const c of stream) finish = c.choices[0]?.finish_reason ?? finish;
    expect(finish).not.toBeNull();
  }
  // The upstream saw the gateway's request with its own key (a wrong key would be a 401 there, a 502 here).
  const upstreamChat = /"route":"POST \/v1\/chat\/completions","status":200/;
  for (const end = Date.now() + 30_000; !upstreamChat.test(up.log()) && Date.now() < end;) await Bun.sleep(20);
  expect(up.log()).toMatch(upstreamChat);
  // Log lines are written just after the response: poll (with a deadline) for the stream's line.
  const upstreamLine = /"model":"tiny"[^\n]*"decisions":\["upstream:http:\/\/127\.0\.0\.1:\d+\/v1"\]/;
  for (const end = Date.now() + 30_000; !upstreamLine.test(gw.log()) && Date.now() < end;) await Bun.sleep(20);
  expect(gw.log()).toMatch(upstreamLine);
});

test("the Responses API streamed from the upstream model through the binary (.stream() and create({stream: true}))", async () => {
  const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
  const ask = { model: "tiny", input: "hello", max_output_tokens: 6, temperature: 0 } as const;
  const whole = await client.responses.create(ask);
  const final = await client.responses.stream(ask).finalResponse();
  expect(final.output_text).toBe(whole.output_text);
  expect(final.usage!.output_tokens).toBe(whole.usage!.output_tokens);
  const types: string[] = [];
  for await (const e of await client.responses.create({ ...ask, stream: true })) types.push(e.type);
  expect(types[0]).toBe("response.created");
  expect(["response.completed", "response.incomplete"]).toContain(types.at(-1)!);
});

test("a model both local and upstream, or a missing key variable, stops the start with exit 2 naming upstreams", async () => {
  const clash = await prepareGateway({ upstreams: [{ url: "http://127.0.0.1:9/v1", models: ["local"] }] }, { localModel: true });
  const r = runBinary(clash.bin, clash.dir, ["serve", "--config", clash.configFile]);
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toContain("upstreams: model local is both a local model and an upstream one");
  const noKey = await prepareGateway({ upstreams: [{ url: "http://127.0.0.1:9/v1", apiKeyEnv: "NOT_SET_HERE", models: ["x"] }] });
  const r2 = runBinary(noKey.bin, noKey.dir, ["serve", "--config", noKey.configFile]);
  expect(r2.exitCode).toBe(2);
  expect(r2.stderr.toString()).toContain("NOT_SET_HERE");
});

test("no max_tokens with a prompt near the upstream's context end: answered, not refused (chat created and streamed, Responses)", async () => {
  // Before: the gateway sent its own default (512) as max_tokens, and the upstream refused it: 400 context_length_exceeded.
  const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
  const messages = [{ role: "user" as const, content: "word ".repeat(560) }];
  const r = await client.chat.completions.create({ model: "tiny", messages, seed: 1 });
  expect(r.usage!.prompt_tokens).toBeGreaterThan(2048 - 512);
  expect(r.usage!.prompt_tokens + r.usage!.completion_tokens).toBeLessThanOrEqual(2048);
  const streamed = await client.chat.completions.stream({ model: "tiny", messages, seed: 1 }).finalChatCompletion();
  expect(streamed.choices[0]!.finish_reason).not.toBeNull();
  const resp = await client.responses.create({ model: "tiny", input: "word ".repeat(560), temperature: 0 });
  expect(["completed", "incomplete"]).toContain(resp.status!);
  // A max_tokens the client asked for is still the client's: refused by the upstream, passed on.
  const e = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 512 }).then(() => undefined, (x) => x as InstanceType<typeof OpenAI.APIError>);
  expect([e?.status, e?.code]).toEqual([400, "context_length_exceeded"]);
});
