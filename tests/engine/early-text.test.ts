/**
 * Early release of held-back text (src/engine/early-text.ts, issue 11 item 5): node-llama-cpp holds a token whose
 * text ends in U+FFFD until a later token's text does not, so a run of byte tokens held everything after it back;
 * llama-server holds only an incomplete UTF-8 sequence at the end. On the tiny model (byte-fallback vocabulary),
 * greedy "zzzz" (completions) writes ten byte tokens in a row and chat "hello world" several runs of them.
 * Observed at the context's decode queue (node-llama-cpp's own, spied; nothing of ours replaced), as in
 * token-accounting: before the decode that samples token k+1 starts, token k has been dealt with.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Token } from "node-llama-cpp";
import type { LlamaEngine } from "../../src/engine/llama";
import { incompleteTokens, stopFree } from "../../src/engine/early-text";
import { makeEngine, spyDecodes } from "../helpers";

const NO_END = new Map([[2, -100], [260, -100]]); // </s> and <|im_end|>: every run decodes exactly max_tokens
let engine: LlamaEngine;
let decodes = 0;

beforeAll(async () => {
  engine = await makeEngine();
  spyDecodes(engine, () => { decodes++; });
}, 120_000);
afterAll(() => engine.dispose());

type Kind = "complete" | "chat";
async function generate(kind: Kind, input: string, maxTokens: number, opts: { stream?: boolean; stop?: string[] } = {}) {
  const sent: { decodes: number; text: string }[] = [];
  decodes = 0;
  const args = {
    model: "tiny", signal: new AbortController().signal, sampling: { maxTokens, temperature: 0, logitBias: NO_END, stop: opts.stop },
    onText: opts.stream ? (text: string) => { sent.push({ decodes, text }); } : undefined,
  };
  const g = kind === "complete" ? await engine.complete({ ...args, prompt: input }) : await engine.chat({ ...args, messages: [{ role: "user", content: input }] });
  return { g, sent, streamed: sent.map((s) => s.text).join("") };
}

describe("complete characters of held-back tokens are streamed as soon as they are sampled", () => {
  for (const [kind, input] of [["complete", "zzzz"], ["chat", "hello world"]] as const) {
    test(`${kind} "${input}"`, async () => {
      const n = 24;
      const { g, sent, streamed } = await generate(kind, input, n, { stream: true });
      expect(streamed).toBe(g.text); // the same text, not one character more or less
      expect(g.completionTokens).toBe(n);
      // The text of the first k tokens, each generation cut at k (the held-back bytes come back at a cut too).
      let heldSomewhere = false;
      for (let k = 1; k < n; k++) {
        const upTo = (await generate(kind, input, k)).g.text;
        const known = upTo.replace(/\uFFFD$/, "");
        expect(g.text.startsWith(known)).toBe(true);
        // Sent before the decode that samples token k+1 (decode k+1; the prompt's is the 1st): all of it but at most
        // one trailing U+FFFD (an incomplete character, held as llama-server holds it).
        const before = sent.filter((s) => s.decodes <= k).map((s) => s.text).join("");
        expect(`${k}: ${before.slice(0, known.length)}`).toBe(`${k}: ${known}`);
        if (upTo.endsWith("\uFFFD\uFFFD")) heldSomewhere = true;
      }
      expect(heldSomewhere).toBe(true); // the prompt does exercise a run of byte tokens (node-llama-cpp held it all)
    }, 120_000);
  }

  // Early release is off with a request's stop strings (node-llama-cpp re-tokenizes a held run's text before a stop
  // found in it, which changes U+FFFD runs: with it on, the first of these streamed one U+FFFD more than the answer).
  test("with stop strings that begin in held text, the streamed text equals the answer", async () => {
    const whole = (await generate("complete", "zzzz", 24)).g.text;
    const at = whole.indexOf("\uFFFD[");
    expect(at).toBeGreaterThan(0);
    for (const stop of ["\uFFFD[", "\uFFFD\uFFFD\uFFFD[", "[do", "dow"]) {
      const { g, streamed } = await generate("complete", "zzzz", 24, { stream: true, stop: [stop] });
      expect(g.finishReason).toBe("stop"); // node-llama-cpp found it (where, in a U+FFFD run, is its own matter)
      expect(whole.startsWith(g.text) && g.text.length <= whole.indexOf(stop)).toBe(true);
      expect(streamed).toBe(g.text);
    }
  }, 120_000);
});

test("the first-token stage (TTFT metrics, the prompt.eval span) is when the first token is sampled, not released", async () => {
  // Chat "the cat" starts with a byte token that node-llama-cpp holds until the 2nd token is sampled.
  const seen: number[] = [];
  decodes = 0;
  const g = await engine.chat({ model: "tiny", messages: [{ role: "user", content: "the cat" }], signal: new AbortController().signal,
    sampling: { maxTokens: 4, temperature: 0, logitBias: NO_END }, onStage: (s) => { if (s === "first-token") seen.push(decodes); } });
  expect(g.text.startsWith("\uFFFD")).toBe(true);
  expect(seen).toEqual([1]); // after the prompt's decode only (it was 2: at the release, after the 2nd token's decode)
}, 60_000);

describe("the hold rules", () => {
  // Bytes per token for the rule tests: each token id stands for the bytes listed.
  const spell = (table: Record<number, number[]>) => (t: Token) => table[t];
  const bytes = spell({ 1: [0x61], 2: [0xe3], 3: [0x81], 4: [0x82], 5: [0x80], 6: [0xf0, 0x9f], 7: [0x61, 0xc3], 8: [0xc3, 0xa9] });
  const ids = (...t: number[]) => t as Token[];

  test("only a trailing lead byte still missing continuation bytes is held (llama-server's validate_utf8)", () => {
    expect(incompleteTokens(ids(1, 2), 0, bytes)).toBe(1); // a E3: E3 waits
    expect(incompleteTokens(ids(1, 2, 3), 0, bytes)).toBe(2); // E3 81 waits for its third byte
    expect(incompleteTokens(ids(1, 2, 3, 4), 0, bytes)).toBe(0); // E3 81 82 complete
    expect(incompleteTokens(ids(5, 5, 5), 0, bytes)).toBe(0); // lone continuation bytes never complete: sent
    expect(incompleteTokens(ids(2, 1), 0, bytes)).toBe(0); // E3 then 'a': invalid, final
    expect(incompleteTokens(ids(1, 6), 0, bytes)).toBe(1); // F0 9F: the token holding the lead byte
    expect(incompleteTokens(ids(7), 0, bytes)).toBe(1); // 'a' + C3 in one token: the whole token waits
    expect(incompleteTokens(ids(8), 0, bytes)).toBe(0);
    expect(incompleteTokens(ids(2, 3, 4, 2), 3, bytes)).toBe(1); // only tokens from `from` on are looked at
    expect(incompleteTokens(ids(1, 9), 0, bytes)).toBeUndefined(); // a token whose bytes are unknown
  });

  test("text that holds a stop string, or ends in its beginning, is left to node-llama-cpp", () => {
    expect(stopFree("abcdef", ["cd"])).toBe(2);
    expect(stopFree("abcdef", ["efg"])).toBe(4);
    expect(stopFree("abcdef", ["fgh", "xyz"])).toBe(5);
    expect(stopFree("abcdef", ["xyz"])).toBe(6);
    expect(stopFree("abc", ["abcd"])).toBe(0);
    expect(stopFree("ab<|im", ["<|im_end|>", "b<"])).toBe(1);
  });
});
