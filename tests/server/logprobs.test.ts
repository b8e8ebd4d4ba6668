/** logprobs / top_logprobs (chat) and logprobs (completions) on the real tiny model. */
import { describe, expect, test } from "bun:test";
import { spellBytes } from "../../src/engine/token-bytes";
import { tokenText } from "../helpers";
import { sdkApp } from "./sdk-app";

const srv = sdkApp();

const post = async (path: string, body: unknown) => {
  const r = await fetch(`${srv.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as any };
};
const user = (content: string) => [{ role: "user", content }];
const sum = (xs: number[]) => xs.reduce((a, b) => a + Math.exp(b), 0);

interface ChatToken { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] }

describe("chat logprobs", () => {
  test("each token: logprob ≤ 0, top list sorted and summing to at most 1, the chosen token's logprob as listed, tokens spelling the answer", async () => {
    for (const sampling of [{ temperature: 0 }, { temperature: 1, seed: 7 }]) {
      const r = await post("/v1/chat/completions", { model: "tiny", messages: user("hello"), max_tokens: 12, logprobs: true, top_logprobs: 5, ...sampling });
      expect(r.status).toBe(200);
      const choice = r.body.choices[0];
      const content = choice.logprobs.content as ChatToken[];
      expect(content.length).toBeGreaterThan(0);
      // The tokens spell the answer (a token that is part of a character by its bytes, written "bytes:\\xNN").
      expect(Buffer.from(content.flatMap((t) => t.bytes)).toString()).toBe(choice.message.content);
      for (const t of content) {
        expect(t.logprob).toBeLessThanOrEqual(0);
        expect(t.top_logprobs).toHaveLength(5);
        expect(sum(t.top_logprobs.map((a) => a.logprob))).toBeLessThanOrEqual(1 + 1e-6);
        const lps = t.top_logprobs.map((a) => a.logprob);
        expect(lps).toEqual([...lps].sort((a, b) => b - a));
        expect(t.token.startsWith("bytes:") ? spellBytes(t.bytes) : t.bytes).toEqual(t.token.startsWith("bytes:") ? t.token : [...Buffer.from(t.token)]);
        // The chosen token, when in the list, is listed with its logprob (the random vocabulary spells some pieces twice).
        // A chosen byte token spells the text sent ("\uFFFD" for a lone one); listed, it is spelled "bytes:\xNN".
        const listed = t.top_logprobs.filter((a) => a.token === t.token || (a.token.startsWith("bytes:") && t.token.includes("\uFFFD"))).map((a) => a.logprob);
        if (t.logprob > lps.at(-1)! + 1e-9) expect(listed.some((lp) => Math.abs(lp - t.logprob) < 1e-6)).toBe(true);
      }
      // Greedy: every chosen token is the most likely one.
      if (sampling.temperature === 0) for (const t of content) expect(t.logprob).toBeCloseTo(t.top_logprobs[0]!.logprob, 6);
    }
  });

  test("an answer whose first token is a bare space: the tokens still spell it (one entry for the space and the next word)", async () => {
    // Detokenized alone a SentencePiece "▁" is "", while the answer's text has the space before the next word, so the
    // tokens did not spell the text and logprobs came back null (the Responses API leg of the AI SDK test, with no seed).
    let spaced = 0;
    for (let seed = 0; seed < 60; seed++) {
      const r = await post("/v1/chat/completions", { model: "tiny", messages: user("hello"), max_tokens: 2, temperature: 1, seed, logprobs: true });
      const choice = r.body.choices[0];
      const content = choice.message.content as string;
      if (content.startsWith(" ")) spaced++;
      expect({ seed, tokens: (choice.logprobs?.content as ChatToken[] | undefined)?.map((t) => t.token).join("") }).toEqual({ seed, tokens: content });
    }
    expect(spaced).toBeGreaterThan(0);
  });

  test("the same answer with and without logprobs (same seed): sampling is unchanged", async () => {
    const body = { model: "tiny", messages: user("count"), max_tokens: 16, temperature: 1, seed: 42 };
    const plain = await post("/v1/chat/completions", body);
    const withLp = await post("/v1/chat/completions", { ...body, logprobs: true });
    expect(withLp.body.choices[0].message.content).toBe(plain.body.choices[0].message.content);
    expect(plain.body.choices[0].logprobs).toBeNull();
    expect(withLp.body.choices[0].logprobs.content.every((t: ChatToken) => t.top_logprobs.length === 0)).toBe(true);
  });

  test("a stop sequence: the tokens spell the answer without it", async () => {
    const probe = await post("/v1/chat/completions", { model: "tiny", messages: user("hi"), max_tokens: 12, temperature: 0 });
    const text = probe.body.choices[0].message.content as string;
    const stop = text.slice(Math.floor(text.length / 2)).trim().slice(0, 3);
    expect(stop.length).toBeGreaterThan(0);
    const r = await post("/v1/chat/completions", { model: "tiny", messages: user("hi"), max_tokens: 12, temperature: 0, stop, logprobs: true });
    const content = r.body.choices[0].logprobs.content as ChatToken[];
    expect(content.map((t) => t.token).join("")).toBe(r.body.choices[0].message.content);
    expect(r.body.choices[0].message.content).toBe(text.slice(0, text.indexOf(stop)));
  });

  test("refusals: top_logprobs without logprobs, out of range", async () => {
    const cases: [unknown, string][] = [
      [{ top_logprobs: 2 }, "top_logprobs"],
      [{ logprobs: true, top_logprobs: 21 }, "top_logprobs"],
    ];
    for (const [extra, param] of cases) {
      const r = await post("/v1/chat/completions", { model: "tiny", messages: user("x"), max_tokens: 2, ...(extra as object) });
      expect([r.status, r.body.error.param, r.body.error.type]).toEqual([400, param, "invalid_request_error"]);
    }
  });
});

describe("the response scanner", () => {
  test("a redacted secret: one entry spells the redaction, with no alternatives, and no token of the secret shows", async () => {
    const secret = "AKIA" + "IOSFODNN7EXAMPLE"; // split so this file is not itself a finding
    const r = await post("/v1/chat/completions", {
      model: "tiny", max_tokens: 60, logprobs: true, top_logprobs: 3, messages: user("give me the key"),
      response_format: { type: "json_schema", json_schema: { name: "k", schema: { type: "object", properties: { key: { const: secret } }, required: ["key"] } } },
    });
    expect(r.status).toBe(200);
    expect(r.body.choices[0].message.content).toContain("[REDACTED:aws-access-token]");
    const content = r.body.choices[0].logprobs.content as ChatToken[];
    expect(content.map((t) => t.token).join("")).toBe(r.body.choices[0].message.content);
    const redaction = content.filter((t) => t.token.includes("[REDACTED:aws-access-token]"));
    expect(redaction.map((t) => t.top_logprobs)).toEqual([[]]);
    expect(JSON.stringify(r.body)).not.toContain("IOSFODNN");
  });
});

describe("completions logprobs", () => {
  test("tokens, token_logprobs, top_logprobs and text_offset line up with the text; n choices each get their own", async () => {
    const r = await post("/v1/completions", { model: "tiny", prompt: "once upon", max_tokens: 10, logprobs: 3, n: 2, seed: 3 });
    expect(r.status).toBe(200);
    for (const choice of r.body.choices) {
      const lp = choice.logprobs;
      expect(lp.tokens.join("")).toBe(choice.text);
      expect(lp.token_logprobs).toHaveLength(lp.tokens.length);
      expect(lp.top_logprobs).toHaveLength(lp.tokens.length);
      let at = 0;
      lp.tokens.forEach((t: string, i: number) => {
        expect(lp.text_offset[i]).toBe(at);
        at += t.length;
        expect(lp.token_logprobs[i]).toBeLessThanOrEqual(0);
        const top = lp.top_logprobs[i] as Record<string, number>;
        expect(Object.keys(top).length).toBeGreaterThan(0);
        expect(Object.keys(top).length).toBeLessThanOrEqual(3);
        expect(sum(Object.values(top))).toBeLessThanOrEqual(1 + 1e-6);
        if (t in top) expect(lp.token_logprobs[i]).toBeLessThanOrEqual(Math.max(...Object.values(top)) + 1e-9);
      });
    }
  });

  test("refusal: more than 5", async () => {
    for (const [extra, param] of [[{ logprobs: 6 }, "logprobs"]] as const) {
      const r = await post("/v1/completions", { model: "tiny", prompt: "x", max_tokens: 2, ...extra });
      expect([r.status, r.body.error.param]).toEqual([400, param]);
    }
  });
});

// Client run: a token holding part of a UTF-8 character detokenizes to U+FFFD, so every such alternative read "�"
// with bytes [239,191,189] and a completions top_logprobs object kept only one of them.
describe("alternatives that are not whole UTF-8", () => {
  // The tiny model's byte tokens <0xC3>, <0xA9>, <0xB6> (ids 198, 172, 185) made the likeliest by a bias.
  const bias = { 198: 100, 172: 100, 185: 100 };
  test("are spelled as OpenAI does ('bytes:\\xNN') with their raw bytes, each its own entry (chat and completions)", async () => {
    const r = await post("/v1/chat/completions", { model: "tiny", messages: user("hi"), max_tokens: 2, logprobs: true, top_logprobs: 3, temperature: 0, logit_bias: bias });
    expect(r.status).toBe(200);
    const alts = (r.body.choices[0].logprobs.content as ChatToken[])[0]!.top_logprobs;
    expect(alts.map((a) => a.token).sort()).toEqual(["bytes:\\xa9", "bytes:\\xb6", "bytes:\\xc3"]);
    for (const a of alts) expect(a.bytes).toEqual([parseInt(a.token.slice(-2), 16)]);
    const c = await post("/v1/completions", { model: "tiny", prompt: "hi", max_tokens: 1, logprobs: 3, temperature: 0, logit_bias: bias });
    expect(Object.keys(c.body.choices[0].logprobs.top_logprobs[0]).sort()).toEqual(["bytes:\\xa9", "bytes:\\xb6", "bytes:\\xc3"]);
  });
});

// Client run (lm-evaluation-harness): chosen tokens that are part of a UTF-8 character were merged into one entry
// per character, so a prompt's entries were fewer than its tokens and `token_logprobs[ctxlen:-1]` read the wrong
// positions for any non-ASCII text. One entry per token now, written as OpenAI writes such tokens.
describe("chosen tokens that are not whole UTF-8", () => {
  test("a token-id prompt with echo lists one entry per id; its byte tokens are 'bytes:\\xNN' at their character's offset", async () => {
    const text = "un café noir";
    const ids = (await post("/tokenize", { content: text })).body.tokens as number[];
    expect(ids).toContain(198); // é is <0xC3> <0xA9> in the tiny vocabulary
    const r = await post("/v1/completions", { model: "tiny", prompt: ids, max_tokens: 1, temperature: 0, logprobs: 1, echo: true });
    expect(r.status).toBe(200);
    const lp = r.body.choices[0].logprobs;
    expect(lp.tokens.length).toBe(ids.length + 1);
    expect(lp.token_logprobs.length).toBe(ids.length + 1);
    const at = ids.indexOf(198);
    expect(lp.tokens.slice(at, at + 2)).toEqual(["bytes:\\xc3", "bytes:\\xa9"]);
    expect(lp.text_offset.slice(at, at + 3)).toEqual([text.indexOf("é"), text.indexOf("é"), text.indexOf("é") + 1]);
    for (const x of lp.token_logprobs.slice(1)) expect(x).toBeLessThanOrEqual(0);
    // Scoring a continuation as lm-eval does: the last prompt token's position holds its logprob.
    expect(typeof lp.token_logprobs[ids.length - 1]).toBe("number");
  });

  test("chat: a generated character made of byte tokens is an entry per token with its raw bytes", async () => {
    // A schema whose only value is "é" makes the model write <0xC3> <0xA9> between the quotes.
    const r = await post("/v1/chat/completions", { model: "tiny", messages: user("hi"), max_tokens: 8, logprobs: true, top_logprobs: 2,
      response_format: { type: "json_schema", json_schema: { name: "e", schema: { enum: ["é"] } } } });
    expect(r.status).toBe(200);
    expect(r.body.choices[0].message.content).toBe('"é"');
    const content = r.body.choices[0].logprobs.content as ChatToken[];
    expect(content.map((t) => t.token)).toEqual(['"', "bytes:\\xc3", "bytes:\\xa9", '"']);
    expect(content.map((t) => t.bytes)).toEqual([[34], [0xc3], [0xa9], [34]]);
    for (const t of content) expect(t.top_logprobs).toHaveLength(2);
  });
});

// Review of the change above: a stop string or a stream chunk ending inside a run of byte tokens made the logprobs
// null (the whole run was compared with the shorter text); an echoed prompt with a leading space before a byte token,
// or with stray bytes, lost entries or came back null; alternatives that are a character's later byte read "".
describe("byte tokens at the edges", () => {
  const schema = (e: string) => ({ type: "json_schema", json_schema: { name: "e", schema: { type: "string", enum: [e] } } });
  test("a stop inside a run of byte tokens, streamed or not: the entries spell the text sent", async () => {
    const body = { model: "tiny", messages: user("x"), logprobs: true, top_logprobs: 2, temperature: 0, stop: ["😀"], response_format: schema("a漢😀éb") };
    const r = await post("/v1/chat/completions", body);
    expect(r.body.choices[0].message.content).toBe('"a漢');
    const content = r.body.choices[0].logprobs.content as ChatToken[];
    expect(content.map((t) => t.token)).toEqual(['"', "a", "bytes:\\xe6", "bytes:\\xbc", "bytes:\\xa2"]);
    for (const t of content) for (const a of t.top_logprobs) expect(a.token === "" || a.bytes.length === 0).toBe(false); // no "" alternatives
    const streamed = await fetch(`${srv.baseURL}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
    const chunks = (await streamed.text()).split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)).choices[0]).filter((c) => c?.delta?.content);
    for (const c of chunks) expect(Buffer.from((c.logprobs.content as ChatToken[]).flatMap((t) => t.bytes)).toString()).toBe(c.delta.content);
    expect(chunks.flatMap((c) => (c.logprobs.content as ChatToken[]).map((t) => t.token))).toEqual(content.map((t) => t.token));
  });

  test("streamed, chunks cut between characters of byte tokens each carry their entries", async () => {
    const body = { model: "tiny", messages: user("x"), logprobs: true, temperature: 0, response_format: schema("漢😀é") };
    const whole = (await post("/v1/chat/completions", body)).body.choices[0].logprobs.content as ChatToken[];
    const streamed = await fetch(`${srv.baseURL}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${srv.ctx.key}`, "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
    const chunks = (await streamed.text()).split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)).choices[0]).filter((c) => c?.delta?.content);
    expect(chunks.every((c) => c.logprobs !== null)).toBe(true);
    expect(chunks.flatMap((c) => (c.logprobs.content as ChatToken[]).map((t) => t.token))).toEqual(whole.map((t) => t.token));
    expect(whole.filter((t) => t.token.startsWith("bytes:"))).toHaveLength(9); // 3 + 4 + 2
  });

  test("echo: one entry per prompt token, also with leading spaces before byte tokens and with stray bytes", async () => {
    // lm-eval run: prompts that begin with spaces came back null or merged ("    x", " ", "   ").
    for (const prompt of [" é", "  漢 a", " a", "日本", " ", "   ", "    x", "   漢字", "    été"]) {
      const ids = (await post("/tokenize", { content: prompt })).body.tokens as number[];
      const r = await post("/v1/completions", { model: "tiny", prompt, echo: true, logprobs: 1, max_tokens: 1, temperature: 0 });
      const lp = r.body.choices[0].logprobs;
      expect([prompt, lp === null ? null : lp.tokens.length]).toEqual([prompt, ids.length + 1]);
      expect(tokenText(lp.tokens.slice(0, ids.length))).toBe(prompt);
    }
    // Token ids (lm-eval sends them without BOS): each spelled by its own bytes, also bytes that make no character
    // (e6 bc, the text's one U+FFFD) and a prompt that ends inside a character (lm-eval's windows cut anywhere).
    const bos = (srv.ctx.engine as any).get("tiny").model.tokens.bos as number;
    const echo = async (prompt: number[]) => (await post("/v1/completions", { model: "tiny", prompt, echo: true, logprobs: 1, max_tokens: 1, temperature: 0 })).body.choices[0].logprobs;
    const stray = await echo([bos, 233, 191, 356]);
    expect(stray.tokens.slice(0, 4)).toEqual(["", "bytes:\\xe6", "bytes:\\xbc", " a"]);
    expect(stray.text_offset.slice(0, 5)).toEqual([0, 0, 0, 1, 3]); // " a" after the U+FFFD the text shows
    for (const ids of [[bos, 261, 233, 191], [379, 243, 162, 155], [261, 261, 261, 261, 379], [261, 410, 337, 337, 340]]) {
      const lp = await echo(ids);
      expect([ids, lp?.tokens.length]).toEqual([ids, ids.length + 1]);
      expect(lp.token_logprobs.slice(1, ids.length).every((x: unknown) => typeof x === "number")).toBe(true);
    }
    // A bare ▁ first: its space is the model's dropped one, and "▁he" keeps its own (" he", as after a BOS).
    expect((await echo([261, 410, 337, 337, 340])).tokens.slice(0, 2)).toEqual(["", " he"]);
  });
});
