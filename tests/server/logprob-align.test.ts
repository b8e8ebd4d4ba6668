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

test("a token spelled with other leading spaces than the text at its spot is one entry spelling the text", () => {
  const lp = (token: string) => ({ token, logprob: -0.5, top: [] });
  // A bare "▁" detokenized alone is "" (skipped); the text has its space before the next word.
  const a = new LogprobAligner();
  for (const t of ["", "by", "at"]) a.token(lp(t));
  expect(a.push(" byat", " byat", true).flatMap((p) => p.logprobs ?? []).map((e) => e.token)).toEqual([" by", "at"]);
  // The other way: the piece has a space the text started without.
  const b = new LogprobAligner();
  for (const t of [" 2", "I"]) b.token(lp(t));
  expect(b.push("2I", "2I", true).map((p) => p.logprobs?.map((e) => e.token))).toEqual([["2", "I"]]);
  // Streamed: the space alone waits for its word.
  const c = new LogprobAligner();
  for (const t of ["", "by"]) c.token(lp(t));
  expect(c.push(" ", " ")).toEqual([]);
  expect(c.push("by", "by", true).flatMap((p) => p.logprobs ?? []).map((e) => e.token)).toEqual([" by"]);
  // A different word is still no match.
  const d = new LogprobAligner();
  d.token(lp(" x"));
  expect(d.push("y", "y", true)).toEqual([{ text: "y", logprobs: null }]);
});

test("byte tokens with their raw bytes: an entry each where the bytes are the text's (a middle byte reads \"\"), else as text", () => {
  const lp = (token: string, bytes?: number[]) => ({ token, logprob: -0.5, top: [], ...(bytes && { bytes }) });
  const a = new LogprobAligner();
  for (const t of [lp("a"), lp("\uFFFD", [0xe6]), lp("", [0x97]), lp("\uFFFD", [0xa5]), lp("b")]) a.token(t);
  const entries = a.push("a日b", "a日b", true).flatMap((p) => p.logprobs ?? []);
  expect(entries.map((e) => e.bytes ?? e.token)).toEqual(["a", [0xe6], [0x97], [0xa5], "b"]);
  // A stray byte the text shows as U+FFFD is that text, not its byte.
  const b = new LogprobAligner();
  for (const t of [lp("\uFFFD", [0xc3]), lp("x")]) b.token(t);
  expect(b.push("\uFFFDx", "\uFFFDx", true).flatMap((p) => p.logprobs ?? [])).toEqual([lp("\uFFFD"), lp("x")]);
});

test("streamed: a piece that ends between characters of byte tokens spells them; the rest waits for its text", () => {
  // Review: the whole run of byte tokens was compared with the piece sent so far, and the logprobs went null.
  const lp = (token: string, bytes?: number[]) => ({ token, logprob: -0.5, top: [], ...(bytes && { bytes }) });
  const a = new LogprobAligner();
  const run = [...Buffer.from("漢😀é")].map((b, i) => lp(i === 0 || i === 3 || i === 7 ? "\uFFFD" : "", [b]));
  for (const t of [...run, lp('"')]) a.token(t);
  const first = a.push("漢😀", "漢😀");
  expect(first.map((p) => [p.text, p.logprobs?.map((e) => e.bytes)])).toEqual([["漢😀", [...Buffer.from("漢😀")].map((b) => [b])]]);
  const rest = a.push('é"', 'é"', true);
  expect(rest.map((p) => [p.text, p.logprobs?.map((e) => e.bytes ?? e.token)])).toEqual([['é"', [[0xc3], [0xa9], '"']]]);
});
