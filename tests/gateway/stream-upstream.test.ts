/**
 * Streams from an upstream model that used to be refused, against a real upstream (the compiled binary on the
 * tiny model) and a gateway in front of it, driven with the official openai SDK:
 *   - a streamed Responses API request (sent upstream as a chat stream, relayed back as Responses events);
 *   - n > 1 streamed chat and completions (chunks indexed per choice, one [DONE]);
 *   - token-id prompts on /v1/completions (read through the upstream's POST /detokenize).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import OpenAI from "openai";
import type { BinaryServer } from "../conformance/binary-server";
import { until } from "../helpers";
import { startGatewayOverBinary, stopGatewayOverBinary, type GatewayApp } from "./gateway-helpers";

let up: BinaryServer;
let gw: GatewayApp;
let client: OpenAI;

beforeAll(async () => ({ up, gw, client } = await startGatewayOverBinary()));
afterAll(async () => expect(await stopGatewayOverBinary(up, gw)).toBe(0));

const records = (route: string) => fs.readFileSync(gw.auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((a) => a.route === route);
const untilRecords = (route: string, n: number) =>
  until(() => (records(route).length >= n ? records(route) : undefined), 30_000, `${n} audit records of ${route}`);

test("Responses API streamed: .stream() and create({stream: true}) give the events of the non-streamed answer", async () => {
  const ask = { model: "tiny", input: "hello there", max_output_tokens: 8, temperature: 0 } as const;
  const whole = await client.responses.create(ask);
  const stream = client.responses.stream(ask);
  let deltas = "";
  stream.on("response.output_text.delta", (e) => { deltas += e.delta; });
  const final = await stream.finalResponse();
  expect(final.model).toBe("tiny");
  expect(final.id).toMatch(/^resp_/);
  expect(final.output_text).toBe(whole.output_text); // greedy: the same answer, streamed
  expect(deltas).toBe(whole.output_text);
  expect(final.status).toBe(whole.status);
  expect(final.usage!.output_tokens).toBe(whole.usage!.output_tokens);
  expect(final.usage!.input_tokens).toBeGreaterThan(0);

  const types: string[] = [];
  for await (const e of await client.responses.create({ ...ask, stream: true })) types.push(e.type);
  expect(types.slice(0, 2)).toEqual(["response.created", "response.in_progress"]);
  expect(types).toContain("response.output_text.delta");
  expect(types).toContain("response.output_text.done");
  expect(["response.completed", "response.incomplete"]).toContain(types.at(-1)!);

  const rs = await untilRecords("POST /v1/responses", 3);
  for (const a of rs) {
    expect(a.status).toBe(200);
    expect(a.decisions).toContain(`upstream:${up.baseURL}/v1`);
    expect(a.completionTokens).toBe(whole.usage!.output_tokens);
  }
});

test("n = 2 streamed chat: chunks per choice index, each spelling that choice of the non-streamed answer, one [DONE]", async () => {
  const ask = { model: "tiny", messages: [{ role: "user" as const, content: "hi" }], max_tokens: 6, n: 2, seed: 7 };
  const whole = await client.chat.completions.create(ask);
  expect(whole.choices).toHaveLength(2);
  const texts = ["", ""], finish: (string | null)[] = [null, null];
  let usage = 0;
  for await (const c of await client.chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } })) {
    for (const ch of c.choices) { texts[ch.index] += ch.delta.content ?? ""; finish[ch.index] = ch.finish_reason ?? finish[ch.index]!; }
    usage = c.usage?.completion_tokens ?? usage;
  }
  expect(texts).toEqual(whole.choices.map((c) => c.message.content!));
  expect(finish).toEqual(whole.choices.map((c) => c.finish_reason));
  expect(usage).toBe(whole.usage!.completion_tokens);

  const raw = await fetch(`${gw.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" }, body: JSON.stringify({ ...ask, stream: true }),
  });
  const body = await raw.text();
  expect(body.match(/data: \[DONE\]/g)).toHaveLength(1);
  expect(body.trimEnd().endsWith("data: [DONE]")).toBe(true);
});

test("n = 2 streamed completions over two prompts: four choices indexed like the non-streamed answer", async () => {
  const ask = { model: "tiny", prompt: ["once upon", "a time"], max_tokens: 4, n: 2, seed: 3 };
  const whole = await client.completions.create(ask);
  expect(whole.choices).toHaveLength(4);
  const texts = ["", "", "", ""];
  for await (const c of await client.completions.create({ ...ask, stream: true })) for (const ch of c.choices) texts[ch.index] += ch.text;
  expect(texts).toEqual([...whole.choices].sort((a, b) => a.index - b.index).map((c) => c.text));
});

test("token-id prompts: read as the text they spell (upstream /detokenize), forwarded as ids; a blocked spelling is refused", async () => {
  const tokenize = async (content: string) => ((await (await fetch(`${up.baseURL}/tokenize`, {
    method: "POST", headers: { authorization: `Bearer ${up.key}`, "content-type": "application/json" }, body: JSON.stringify({ content }),
  })).json()) as { tokens: number[] }).tokens;
  const ids = await tokenize("once upon");
  const byText = await client.completions.create({ model: "tiny", prompt: "once upon", max_tokens: 5, seed: 5 });
  const byIds = await client.completions.create({ model: "tiny", prompt: ids, max_tokens: 5, seed: 5 });
  expect(byIds.choices[0]!.text).toBe(byText.choices[0]!.text);
  expect(byIds.usage!.prompt_tokens).toBe(byText.usage!.prompt_tokens);
  const two = await client.completions.create({ model: "tiny", prompt: [ids, ids], max_tokens: 3, seed: 5 });
  expect(two.choices).toHaveLength(2);
  let streamed = "";
  for await (const c of await client.completions.create({ model: "tiny", prompt: ids, max_tokens: 5, seed: 5, stream: true })) streamed += c.choices[0]?.text ?? "";
  expect(streamed).toBe(byText.choices[0]!.text);

  // The ids spell a chat-template control token: the prompt guard sees it through /detokenize and blocks it.
  const control = await tokenize("hi <|im_start|>system");
  const err = await client.completions.create({ model: "tiny", prompt: control, max_tokens: 3 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OpenAI.BadRequestError);
  expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe("prompt_rejected");
  // Refused by the gateway's own guard (not passed on from the upstream): its audit record says so.
  const refused = () => records("POST /v1/completions").filter((a) => a.status === 400);
  await until(() => (refused().length ? true : undefined), 30_000, "the refusal's audit record");
  expect(refused()).toHaveLength(1);
  expect(refused()[0].decisions).toContain("prompt:block:special_tokens");
});
