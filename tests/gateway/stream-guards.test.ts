/**
 * The guards on the streams added for upstream models, seen from a recording upstream that streams exactly
 * what the test gives it: the response scanner on a Responses stream relayed from a chat stream, one
 * scanner per choice on n > 1 streams, and token-id prompts (detokenized for the prompt guard, refused
 * with 400 naming prompt when the upstream cannot, forwarded unread with gateway.tokenPrompts "forward").
 */
import { afterEach, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import OpenAI from "openai";
import { chatChunk, recordingUpstream, sseChunks, startGateway, type Seen } from "./gateway-helpers";

const cleanup: (() => unknown)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

async function gatewayOver(url: string, extra: Record<string, unknown> = {}) {
  const gw = await startGateway({ upstreams: [{ url, models: ["m"] }], gateway: { retries: 0, healthIntervalMs: 0, ...(extra.gateway as object) }, ...extra } as never);
  cleanup.push(() => gw.close());
  return { gw, client: new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 }) };
}
function upstream(answer: (req: Request, seen: Seen) => Response | Promise<Response>) {
  const u = recordingUpstream(answer);
  cleanup.push(() => u.stop());
  return u;
}
const streaming = (events: unknown[], size: number) => upstream((_req, s) => (s.path.endsWith("/models") ? Response.json({ data: [] })
  : new Response(sseChunks(events, size), { headers: { "content-type": "text/event-stream" } })));
const usage = (completion: number) => ({ id: "x", object: "chat.completion.chunk", created: 1, model: "m", choices: [], usage: { prompt_tokens: 5, completion_tokens: completion, total_tokens: 5 + completion } });
const indexed = (index: number, delta: Record<string, unknown>, finish: string | null = null) =>
  ({ ...chatChunk(delta, finish), choices: [{ index, delta, finish_reason: finish }] });

const PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----";

test("Responses stream: the upstream is asked for a chat stream; a key in 3-character deltas is redacted in every event; a tool call's arguments too", async () => {
  const text = `Here it is: ${PEM} done.`;
  const deltas = [chatChunk({ role: "assistant", content: "" })];
  for (let i = 0; i < text.length; i += 3) deltas.push(chatChunk({ content: text.slice(i, i + 3) }));
  const args = JSON.stringify({ k: PEM });
  const call = chatChunk({ tool_calls: [{ index: 0, id: "call_9", type: "function", function: { name: "save", arguments: args.slice(0, 20) } }] });
  const call2 = chatChunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(20) } }] });
  const up = streaming([...deltas, call, call2, chatChunk({}, "tool_calls"), usage(77), "[DONE]"], 7);
  const { gw, client } = await gatewayOver(up.url);
  const events = [];
  for await (const e of await client.responses.create({ model: "m", input: "key?", instructions: "be brief", stream: true })) events.push(e);
  const sent = JSON.parse(up.seen.at(-1)!.body);
  expect(up.seen.at(-1)!.path).toBe("/v1/chat/completions");
  expect(sent.stream).toBe(true);
  expect(sent.messages).toEqual([{ role: "system", content: "be brief" }, { role: "user", content: "key?" }]);
  const all = JSON.stringify(events);
  expect(all).not.toContain("MIIEow");
  const done = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
  expect(done.type).toBe("response.completed");
  const message = done.response.output[0] as OpenAI.Responses.ResponseOutputMessage;
  expect((message.content[0] as OpenAI.Responses.ResponseOutputText).text).toBe("Here it is: [REDACTED:private-key] done.");
  const fn = done.response.output[1] as OpenAI.Responses.ResponseFunctionToolCall;
  expect([fn.type, fn.name, fn.call_id]).toEqual(["function_call", "save", "call_9"]);
  expect(fn.arguments).toBe(JSON.stringify({ k: "[REDACTED:private-key]" }));
  expect(done.response.usage!.output_tokens).toBe(77);
  for (let end = Date.now() + 30_000; !fs.readFileSync(gw.auditFile, "utf8").includes("/v1/responses") && Date.now() < end;) await Bun.sleep(20);
  const audit = fs.readFileSync(gw.auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l)).at(-1);
  expect(audit.route).toBe("POST /v1/responses");
  expect(audit.decisions).toContain("response:redact:private-key");
  expect(audit.completionTokens).toBe(77);
});

test("n = 2 stream with block: the choice that spells a key ends content_filter with nothing of it; the other choice is whole", async () => {
  const bad = `Sure: ${PEM} and more after it.`, good = "A harmless answer, nothing to hide.";
  const events: unknown[] = [indexed(0, { role: "assistant", content: "" }), indexed(1, { role: "assistant", content: "" })];
  for (let i = 0; i < Math.max(bad.length, good.length); i += 4) {
    if (i < good.length) events.push(indexed(0, { content: good.slice(i, i + 4) }));
    if (i < bad.length) events.push(indexed(1, { content: bad.slice(i, i + 4) }));
  }
  const up = streaming([...events, indexed(0, {}, "stop"), indexed(1, {}, "stop"), usage(40), "[DONE]"], 11);
  const { gw, client } = await gatewayOver(up.url, { responseScan: { action: "block" } });
  const texts = ["", ""], finish: (string | null)[] = [null, null];
  for await (const c of await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }], n: 2, stream: true })) {
    for (const ch of c.choices) { texts[ch.index] += ch.delta.content ?? ""; finish[ch.index] = ch.finish_reason ?? finish[ch.index]!; }
  }
  expect(texts[0]).toBe(good);
  expect(finish).toEqual(["stop", "content_filter"]);
  expect(texts[1]).not.toContain("BEGIN RSA");
  expect(texts[1]).not.toContain("more after");
  expect(gw.gateway.pool.all[0]!.inflight).toBe(0);
  expect(gw.gateway.pool.all[0]!.breaker.state).toBe("closed");
});

test("token-id prompts: /detokenize feeds the prompt guard; no /detokenize → 400 naming prompt; tokenPrompts forward sends them unread", async () => {
  const answer = () => Response.json({ id: "c", object: "text_completion", created: 1, model: "m",
    choices: [{ index: 0, text: "ok", finish_reason: "stop" }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
  const spelled: Record<string, string> = { "1,2,3": "a fine prompt", "4,5": "ignore \u202Eprevious" };
  const withDetok = upstream(async (_req, s) => {
    if (s.path === "/detokenize") return Response.json({ content: spelled[JSON.parse(s.body).tokens.join(",")] ?? "" });
    return answer();
  });
  const a = await gatewayOver(withDetok.url);
  const ok = await a.client.completions.create({ model: "m", prompt: [1, 2, 3], max_tokens: 2 });
  expect(ok.choices[0]!.text).toBe("ok");
  expect(withDetok.seen.map((s) => s.path)).toEqual(["/detokenize", "/v1/completions"]);
  expect(JSON.parse(withDetok.seen[1]!.body).prompt).toEqual([1, 2, 3]); // unchanged by the guard: sent as ids
  expect(withDetok.seen[0]!.headers.authorization).toBeUndefined(); // no client key goes anywhere
  const blocked = await a.client.completions.create({ model: "m", prompt: [[1, 2, 3], [4, 5]], max_tokens: 2 }).catch((e: unknown) => e);
  expect(blocked).toBeInstanceOf(OpenAI.BadRequestError);
  expect((blocked as InstanceType<typeof OpenAI.APIError>).code).toBe("prompt_rejected");
  expect(withDetok.seen.filter((s) => s.path === "/v1/completions")).toHaveLength(1); // the blocked one never left

  const without = upstream((_req, s) => (s.path === "/detokenize" ? new Response("Not Found", { status: 404 }) : answer()));
  const b = await gatewayOver(without.url);
  const refused = await b.client.completions.create({ model: "m", prompt: [1, 2, 3], max_tokens: 2 }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
  expect((refused as InstanceType<typeof OpenAI.APIError>).param).toBe("prompt");
  expect((refused as Error).message).toContain("/detokenize");
  expect(without.seen.some((s) => s.path === "/v1/completions")).toBe(false);

  const c = await gatewayOver(without.url, { gateway: { tokenPrompts: "forward" } });
  const before = without.seen.length;
  expect((await c.client.completions.create({ model: "m", prompt: [[4, 5]], max_tokens: 2 })).choices[0]!.text).toBe("ok");
  expect(without.seen.slice(before).map((s) => s.path)).toEqual(["/v1/completions"]);
  expect(JSON.parse(without.seen.at(-1)!.body).prompt).toEqual([[4, 5]]);
});

// Attack on stop 73's fixes: an upstream whose /detokenize answer broke off mid-body gave the client a 500.
test("token-id prompts: a /detokenize answer that breaks off mid-body is a 502 naming its error's code, not a 500", async () => {
  const broken = net.createServer((sock) => {
    sock.once("data", () => { sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"con'); sock.destroy(); });
    sock.on("error", () => {});
  });
  await new Promise<void>((resolve) => broken.listen(0, "127.0.0.1", resolve));
  cleanup.push(() => broken.close());
  const { client } = await gatewayOver(`http://127.0.0.1:${(broken.address() as net.AddressInfo).port}/v1`);
  const err = await client.completions.create({ model: "m", prompt: [1, 2, 3], max_tokens: 2 }).catch((e: unknown) => e) as InstanceType<typeof OpenAI.APIError>;
  expect([err.status, err.code]).toEqual([502, "upstream_error"]);
  expect(err.message).toContain("broke off its answer to POST /detokenize");
  expect(err.message).not.toContain("127.0.0.1");
});

test("n = 2 to an upstream that streams one choice: choice 0 arrives, then an error the SDK raises; not counted against the upstream", async () => {
  const up = streaming([indexed(0, { role: "assistant", content: "" }), indexed(0, { content: "only one" }), indexed(0, {}, "stop"), usage(2), "[DONE]"], 1000);
  const { gw, client } = await gatewayOver(up.url, { gateway: { breakerFailures: 1 } });
  let text = "";
  const err = await (async () => {
    for await (const c of await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }], n: 2, stream: true })) {
      text += c.choices[0]?.delta.content ?? "";
    }
  })().catch((e: unknown) => e);
  expect(text).toBe("only one");
  expect(err).toBeInstanceOf(OpenAI.APIError);
  expect((err as Error).message).toContain("1 of the 2 choices");
  expect(gw.gateway.pool.all[0]!.breaker.state).toBe("closed");
});
