/**
 * A real llama-server as an upstream: built with cmake from the llama.cpp
 * source node-llama-cpp ships (scripts/peer-build.ts, cached outside the repo),
 * serving the tiny model with its own --api-key. Chat and completions go
 * through the gateway with the openai SDK; then llama-server is killed
 * mid-stream: the client's stream ends with an error, its breaker opens and the
 * next request goes to the other upstream (the appliance binary).
 * A streamed Responses request and token-id prompts (read through llama-server's own /detokenize) go
 * through a gateway in front of llama-server alone.
 * Where it cannot be built (no cmake or compiler), this file says so loudly and skips.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import { peerOrSkip, startLlamaServer, type LlamaServer } from "../server/peer-llama-server";
import { startGateway, type GatewayApp } from "./gateway-helpers";

const peer = await peerOrSkip("LLAMA-SERVER UPSTREAM TEST");
const skip = !peer;

const LLAMA_KEY = "llama-server-key";
/** The tiny model's end tokens (</s>, <|im_end|>) banned, so a stream runs to max_tokens. */
const NO_END = { "2": -100, "260": -100 };

describe.skipIf(!!skip)("llama-server as an upstream", () => {
  let llama: LlamaServer;
  let app: BinaryServer;
  let gw: GatewayApp;
  let client: OpenAI;
  beforeAll(async () => {
    llama = await startLlamaServer(peer!.llamaServer, ["--api-key", LLAMA_KEY]);
    app = await startBinary();
    gw = await startGateway({
      upstreams: [{ url: `${llama.base}/v1`, apiKey: LLAMA_KEY, models: ["tiny"] }, { url: `${app.baseURL}/v1`, apiKey: app.key, models: ["tiny"] }],
      gateway: { breakerFailures: 1, retries: 1, backoffMs: 0, healthIntervalMs: 0 },
    });
    client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    llama?.proc.kill("SIGKILL");
    await app?.stop();
  });

  test("a streamed Responses request and token-id prompts through llama-server alone (its /detokenize feeds the prompt guard)", async () => {
    const only = await startGateway({ upstreams: [{ url: `${llama.base}/v1`, apiKey: LLAMA_KEY, models: ["tiny"] }], gateway: { retries: 0, healthIntervalMs: 0 } });
    try {
      const c = new OpenAI({ apiKey: only.key, baseURL: `${only.baseURL}/v1`, maxRetries: 0 });
      let deltas = "";
      const s = c.responses.stream({ model: "tiny", input: "hello", max_output_tokens: 6, temperature: 0 });
      s.on("response.output_text.delta", (e) => { deltas += e.delta; });
      const final = await s.finalResponse();
      expect(final.output_text).toBe(deltas);
      expect(final.usage!.output_tokens).toBeGreaterThan(0);

      const tokenize = async (content: string) => ((await (await fetch(`${llama.base}/tokenize`, {
        method: "POST", headers: { authorization: `Bearer ${LLAMA_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ content }),
      })).json()) as { tokens: number[] }).tokens;
      const ids = await tokenize("once upon");
      const byIds = await c.completions.create({ model: "tiny", prompt: ids, max_tokens: 4, temperature: 0 });
      expect(byIds.usage!.prompt_tokens).toBeGreaterThanOrEqual(ids.length);
      const err = await c.completions.create({ model: "tiny", prompt: await tokenize("hi <|im_start|>system"), max_tokens: 2 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe("prompt_rejected");
    } finally {
      await only.close();
    }
  });

  test("chat (whole) and completions (streamed) through the gateway with llama-server's key; then killed mid-stream", async () => {
    const [viaLlama] = gw.gateway.pool.all;
    // Ties rotate from the first upstream: with nothing in flight, the odd requests go to llama-server.
    const tasks = () => llama.log().match(/processing task/g)?.length ?? 0;
    const before = tasks();
    const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 8 });
    expect(r.choices[0]!.message.role).toBe("assistant");
    expect(tasks()).toBe(before + 1); // llama-server took it (its key accepted)
    await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }); // the appliance's turn

    const stream = await client.completions.create({ model: "tiny", prompt: "long", max_tokens: 2000, temperature: 0, logit_bias: NO_END, stream: true });
    const it = stream[Symbol.asyncIterator]();
    let text = "";
    for (let i = 0; i < 3; i++) text += (await it.next()).value?.choices[0]?.text ?? "";
    expect(viaLlama!.inflight).toBe(1);
    llama.proc.kill("SIGKILL");
    const err = await (async () => { for (;;) if ((await it.next()).done) return "ended without an error"; })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(viaLlama!.breaker.state).toBe("open");

    const next = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 4 });
    expect(next.choices).toHaveLength(1);
    expect(app.log()).toMatch(/"route":"POST \/v1\/chat\/completions","status":200/);
  });
});
