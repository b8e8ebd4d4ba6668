/**
 * /v1/completions stop strings cut the text the sampled tokens spell: the answer with a stop string is the answer
 * without it (same seed) up to the stop's first place, streamed or not. node-llama-cpp looked for stops in each
 * token's text detokenized alone, where a SentencePiece "▁" is "": the space before a stop word was dropped, a
 * stop inside a word after a bare "▁" lost that space ('{"ı fals' came out '{"ıfals', logprobs null), the byte
 * left of a split character before a stop was dropped, and a stop made of byte tokens was never found.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { makeApp, req } from "../helpers";

let t: Awaited<ReturnType<typeof makeApp>>;
beforeAll(async () => { t = await makeApp({ config: { rateLimit: { rpm: 0, tpm: 0 } } }); }, 120_000);
afterAll(async () => { await t.engine.dispose(); });

interface Choice { text: string; finish_reason: string | null; logprobs: { tokens: string[] } | null }
async function complete(body: Record<string, unknown>): Promise<{ text: string; finish: string | null; logprobs: Choice["logprobs"] }> {
  const r = await t.app.handle(req("/v1/completions", { method: "POST", key: t.key, json: { model: "tiny", max_tokens: 12, ...body } }));
  expect(r.status).toBe(200);
  if (!body.stream) {
    const c = ((await r.json()) as { choices: Choice[] }).choices[0]!;
    return { text: c.text, finish: c.finish_reason, logprobs: c.logprobs };
  }
  const chunks = (await r.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => (JSON.parse(e.slice(6)) as { choices: Choice[] }).choices[0]!);
  return { text: chunks.map((c) => c.text).join(""), finish: chunks.at(-1)!.finish_reason, logprobs: null };
}

test("the reported case: a stop inside the word after a bare space keeps the space, and logprobs spell the text", async () => {
  const body = { prompt: "a", max_tokens: 8, logprobs: 3, response_format: { type: "json_object" }, seed: 100, stop: "e" };
  const c = await complete(body);
  expect(c.text).toBe('{"ı fals');
  expect(c.finish).toBe("stop");
  expect(c.logprobs!.tokens.join("")).toBe(c.text);
  expect((await complete({ ...body, stream: true })).text).toBe(c.text);
}, 60_000);

test("with a stop string, the same seed's answer up to the stop's first place, streamed or not", async () => {
  const wrong: string[] = [];
  let cut = 0, nonAscii = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const body = { prompt: `a ${seed}`, seed };
    const full = (await complete(body)).text;
    // A stop from the answer's own characters (not spaces or U+FFFD); non-ASCII ones on odd seeds where there are any.
    const chars = [...full].filter((ch) => ch.trim() && ch !== "\uFFFD");
    const wide = chars.filter((ch) => ch.charCodeAt(0) > 127);
    const pool = seed % 2 && wide.length ? wide : chars;
    expect(pool.length).toBeGreaterThan(0);
    const stop = pool[Math.floor(pool.length / 2)]!;
    if (stop.charCodeAt(0) > 127) nonAscii++;
    const want = full.slice(0, full.indexOf(stop));
    const got = await complete({ ...body, stop });
    const streamed = await complete({ ...body, stop, stream: true });
    if (got.text !== want || streamed.text !== want || got.finish !== "stop" || streamed.finish !== "stop") {
      wrong.push(`seed ${seed} stop ${JSON.stringify(stop)}: want ${JSON.stringify(want)}, got ${JSON.stringify(got.text)}, streamed ${JSON.stringify(streamed.text)}`);
    }
    if (want.length < full.length) cut++;
  }
  expect(wrong).toEqual([]);
  expect(cut).toBe(40);
  expect(nonAscii).toBeGreaterThan(3); // the byte-token stops were really tried
}, 180_000);
