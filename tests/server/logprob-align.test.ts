/** The aligner's byte-token merge keeps the asked-for alternatives (OpenAI clients expect top_logprobs.length = N). */
import { expect, test } from "bun:test";
import { LogprobAligner } from "../../src/server/openai/logprob-align";

test("tokens that are bytes of one character become one entry carrying the first byte's alternatives", () => {
  const alt = (t: string) => [{ token: t, logprob: -1 }, { token: `${t}2`, logprob: -2 }];
  const a = new LogprobAligner();
  a.token({ token: "a", logprob: -0.1, top: alt("a") });
  a.token({ token: "\uFFFD", logprob: -0.2, top: alt("\uFFFD") });
  a.token({ token: "\uFFFD", logprob: -0.3, top: alt("x") });
  a.token({ token: "b", logprob: -0.4, top: alt("b") });
  const pieces = a.push("aéb", "aéb", true);
  const entries = pieces.flatMap((p) => p.logprobs ?? []);
  expect(entries.map((e) => e.token)).toEqual(["a", "é", "b"]);
  expect(entries[1]!.logprob).toBeCloseTo(-0.5);
  for (const e of entries) expect(e.top).toHaveLength(2); // was [] for the merged entry
});
