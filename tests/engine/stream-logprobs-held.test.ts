/**
 * A streamed generation with logprobs hands each token's record to onLogprob and keeps none: every record was also
 * kept to the answer's end, so n=4 top-20 streams held ~40 MB each (a load run), past the 8 MiB backlog a connection
 * may hold. Not streamed, the answer carries them all, as before.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { LlamaEngine } from "../../src/engine/llama";
import type { TokenLogprob } from "../../src/engine/engine";
import { makeEngine } from "../helpers";

let engine: LlamaEngine;
beforeAll(async () => { engine = await makeEngine({ parallel: 1 }); }, 120_000);
afterAll(() => engine.dispose());

test("streamed: each record goes to onLogprob, none is kept; not streamed: all are on the answer", async () => {
  const sampling = { maxTokens: 12, temperature: 0, logprobs: 5 };
  const seen: TokenLogprob[] = [];
  const streamed = await engine.complete({ model: "tiny", prompt: "Once upon", sampling, signal: new AbortController().signal, onLogprob: (t) => seen.push(t) });
  expect(seen.length).toBe(streamed.completionTokens);
  expect(seen[0]!.top.length).toBe(5);
  expect(streamed.logprobs ?? []).toEqual([]);
  const whole = await engine.complete({ model: "tiny", prompt: "Once upon", sampling, signal: new AbortController().signal });
  expect(whole.logprobs!.map((r) => r.token)).toEqual(seen.map((r) => r.token));
});
