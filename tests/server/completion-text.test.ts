/**
 * /v1/completions text is what the generated tokens spell after the prompt, as llama-server sends it: a SentencePiece
 * model's first generated token keeps its leading space (node-llama-cpp's LlamaCompletion detokenizes without the
 * prompt, so " hello" came out as "hello"). Compared with a real llama-server on the same model, greedy, end tokens
 * banned (both runs decode exactly max_tokens); logprob token strings spell the text, text_offset follows them, and
 * they are llama-server's token strings.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { listenApp, makeApp, tokenText } from "../helpers";
import { peerOrSkip, startLlamaServer, type LlamaServer } from "./peer-llama-server";

const peer = await peerOrSkip("COMPLETIONS TEXT VS LLAMA-SERVER");
const NO_END = { "2": -100, "260": -100 }; // </s> and <|im_end|>
const PROMPTS = ["hello world", "Once upon a time", "json value"];

let base = "", key = "", llama: LlamaServer | undefined, stop = async () => {};
beforeAll(async () => {
  const t = await makeApp({ config: { rateLimit: { rpm: 0, tpm: 0 } } });
  base = listenApp(t.app);
  key = t.key;
  stop = async () => { await t.app.stop(true); await t.engine.dispose(); };
  if (peer) llama = await startLlamaServer(peer.llamaServer);
}, 120_000);
afterAll(async () => { llama?.stop(); await stop(); });

interface Completion { choices: { text: string; logprobs: { tokens: string[]; text_offset: number[] } | null }[] }
/** The text of a streamed completion: every SSE event's choices' text, in order. */
async function sseText(r: Response): Promise<string> {
  return (await r.text()).split("\n\n").filter((e) => e.startsWith("data: {"))
    .map((e) => (JSON.parse(e.slice(6)) as Completion).choices.map((c) => c.text).join("")).join("");
}
async function ours(prompt: string, extra: Record<string, unknown> = {}): Promise<Completion> {
  const r = await fetch(`${base}/v1/completions`, {
    method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt, max_tokens: 8, temperature: 0, logit_bias: NO_END, ...extra }),
  });
  expect(r.status).toBe(200);
  return await r.json() as Completion;
}

test("the first generated token keeps its leading space, and logprob tokens spell the text", async () => {
  const c = (await ours("hello world", { logprobs: 1 })).choices[0]!;
  // The tiny model answers "hello world" with " hello" (its token ▁hello), never "hello" glued to the prompt.
  expect(c.text.startsWith(" ")).toBe(true);
  expect(tokenText(c.logprobs!.tokens)).toBe(c.text);
  let at = 0;
  c.logprobs!.tokens.forEach((t, i) => { expect(c.logprobs!.text_offset[i]).toBe(at); at += t.length; });
  // echo: the prompt, then the same text, offsets into the whole.
  const e = (await ours("hello world", { logprobs: 1, echo: true })).choices[0]!;
  expect(e.text).toBe("hello world" + c.text);
  const offsets = e.logprobs!.text_offset;
  expect(tokenText(e.logprobs!.tokens)).toBe(e.text);
  expect(offsets.slice(-c.logprobs!.tokens.length)).toEqual(c.logprobs!.text_offset.map((o) => o + "hello world".length));
}, 60_000);

test("streamed text is the same", async () => {
  const r = await fetch(`${base}/v1/completions`, {
    method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: "hello world", max_tokens: 8, temperature: 0, logit_bias: NO_END, stream: true }),
  });
  const text = await sseText(r);
  expect(text.startsWith(" ")).toBe(true);
  expect(text).toBe((await ours("hello world")).choices[0]!.text);
}, 60_000);

describe.skipIf(!peer)("against llama-server", () => {
  test("same text for the same greedy tokens", async () => {
    for (const prompt of PROMPTS) {
      const r = await fetch(`${llama!.base}/v1/completions`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", prompt, max_tokens: 8, temperature: 0, logit_bias: NO_END }),
      });
      const theirs = (await r.json() as Completion).choices[0]!.text;
      expect((await ours(prompt)).choices[0]!.text).toBe(theirs);
    }
  }, 60_000);

  test("the same logprob token strings at the same offsets (llama-server lists them as logprobs.content[].token)", async () => {
    for (const prompt of PROMPTS) {
      const r = await fetch(`${llama!.base}/v1/completions`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", prompt, max_tokens: 8, temperature: 0, logit_bias: NO_END, logprobs: 1 }),
      });
      const theirs = (await r.json() as { choices: { logprobs: { content: { token: string }[] } }[] }).choices[0]!.logprobs.content.map((c) => c.token);
      const mine = (await ours(prompt, { logprobs: 1 })).choices[0]!.logprobs!;
      expect(tokenText(mine.tokens)).toBe(theirs.join(""));
      // Each of llama-server's whole-text tokens is ours, at the same offset. (A stray byte token is where the two
      // differ: llama-server glues it to the next token's text, "\uFFFD or"; one entry per token here.)
      let at = 0;
      const byOffset = new Map(mine.tokens.map((t, i) => [mine.text_offset[i]!, t]));
      for (const t of theirs) {
        if (!t.includes("\uFFFD")) expect([at, byOffset.get(at)]).toEqual([at, t]);
        at += t.length;
      }
    }
  }, 60_000);
});

test("an end token right after a byte token: the byte's text is kept, streamed and not, and counted", async () => {
  // Found by a random fuzz (seed 33501): "," then a byte token that starts a character, then the end token. The
  // non-streamed text dropped the byte (node-llama-cpp never releases it) while the stream sent it. Which seeds end
  // that way depends on the CPU's arithmetic (ggml's CPU variant): 33501 did on one machine kind, 33668, 33702 and
  // 33859 on another (a search of 400 seeds). Every seed here that ends that way is checked; at least one must.
  let cases = 0;
  for (const seed of [33501, 33668, 33702, 33859]) {
    const body = { model: "tiny", prompt: "👨‍👩‍👧 family", temperature: 1, seed, max_tokens: 8, presence_penalty: 0.5 };
    const post = (extra: Record<string, unknown>) => fetch(`${base}/v1/completions`, {
      method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify({ ...body, ...extra }),
    });
    const whole = await (await post({})).json() as Completion & { usage: { completion_tokens: number }; choices: { finish_reason: string }[] };
    const streamed = await sseText(await post({ stream: true }));
    expect({ seed, text: whole.choices[0]!.text }).toEqual({ seed, text: streamed });
    if (whole.choices[0]!.finish_reason !== "stop" || !whole.choices[0]!.text.endsWith("\uFFFD")) continue;
    cases++;
    // Counted: one logprob entry per generated token, the trailing byte's too.
    const lp = (await (await post({ logprobs: 1 })).json() as Completion).choices[0]!;
    expect(tokenText(lp.logprobs!.tokens)).toBe(lp.text);
    expect(lp.text).toBe(whole.choices[0]!.text);
    expect(lp.logprobs!.tokens.length).toBe(whole.usage.completion_tokens);
  }
  expect(cases).toBeGreaterThan(0);
}, 60_000);
