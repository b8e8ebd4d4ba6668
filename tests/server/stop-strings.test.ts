/**
 * Stop strings cut the answer's text as sent: the answer with a stop string is the same seed's answer without it,
 * cut before the stop's first place, streamed or not, for chat and completions. node-llama-cpp looked for stops in
 * each token's text detokenized alone, where a SentencePiece "▁" is "": the space before a stop was dropped
 * (chat: '{"5 one ' came out '{"5 one' with stop "like "), a stop inside a word after a bare "▁" lost that space
 * ('{"ı fals' came out '{"ıfals', logprobs null), the byte left of a split character before a stop was dropped, and a
 * stop made of byte tokens was never found (src/engine/stop-text.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { makeApp, req, tokenText } from "../helpers";

let t: Awaited<ReturnType<typeof makeApp>>;
beforeAll(async () => { t = await makeApp({ config: { rateLimit: { rpm: 0, tpm: 0 } } }); }, 120_000);
afterAll(async () => { await t.engine.dispose(); });

type Route = "completions" | "chat";
interface Choice { text?: string; message?: { content: string | null }; delta?: { content?: string | null }; finish_reason: string | null; logprobs: { tokens: string[] } | null }
const textOf = (c: Choice) => c.text ?? c.message?.content ?? c.delta?.content ?? "";

async function answer(route: Route, body: Record<string, unknown>): Promise<{ text: string; finish: string | null; logprobs: Choice["logprobs"] }> {
  const path = route === "chat" ? "/v1/chat/completions" : "/v1/completions";
  const r = await t.app.handle(req(path, { method: "POST", key: t.key, json: { model: "tiny", max_tokens: 12, ...body } }));
  expect(r.status).toBe(200);
  if (!body.stream) {
    const c = ((await r.json()) as { choices: Choice[] }).choices[0]!;
    return { text: textOf(c), finish: c.finish_reason, logprobs: c.logprobs };
  }
  const events = (await r.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)) as { choices?: Choice[]; error?: unknown });
  expect(events.filter((e) => e.error)).toEqual([]);
  const chunks = events.map((e) => e.choices![0]!);
  return { text: chunks.map(textOf).join(""), finish: chunks.at(-1)!.finish_reason, logprobs: null };
}

/** A stop taken from the answer itself, of the shape `kind` asks for (undefined when the answer has none). */
function stopFrom(full: string, kind: number): string | undefined {
  const chars = [...full].filter((ch) => ch.trim() && ch !== "\uFFFD");
  if (kind === 0) return chars[Math.floor(chars.length / 2)];
  if (kind === 1) { const wide = chars.filter((ch) => ch.charCodeAt(0) > 127); return wide[Math.floor(wide.length / 2)]; }
  // A space and the word after it, or the word before a space and the space: the shapes that lost their space.
  const words = [...full.matchAll(/ \p{L}{1,4}|\p{L}{1,4} /gu)].map((m) => m[0]);
  return words[Math.floor(words.length / 2)];
}

test("the reported case: a stop inside the word after a bare space keeps the space, and logprobs spell the text", async () => {
  const body = { prompt: "a", max_tokens: 8, logprobs: 3, response_format: { type: "json_object" }, seed: 100, stop: "e" };
  const c = await answer("completions", body);
  expect(c.text).toBe('{"ı fals');
  expect(c.finish).toBe("stop");
  expect(tokenText(c.logprobs!.tokens)).toBe(c.text);
  expect((await answer("completions", { ...body, stream: true })).text).toBe(c.text);
}, 60_000);

for (const route of ["completions", "chat"] as const) {
  test(`${route}: with a stop string, the same seed's answer up to the stop's first place, streamed or not`, async () => {
    const wrong: string[] = [];
    const kinds = [0, 0, 0];
    for (let seed = 1; seed <= 45; seed++) {
      const base = route === "chat" ? { messages: [{ role: "user", content: `hi ${seed}` }], seed } : { prompt: `a ${seed}`, seed };
      const full = (await answer(route, base)).text;
      // The shape this seed asks for, else the next one the answer has (an answer of U+FFFD alone has none).
      const kind = [seed % 3, (seed + 1) % 3, (seed + 2) % 3].find((k) => stopFrom(full, k) !== undefined);
      if (kind === undefined) continue;
      const stop = stopFrom(full, kind)!;
      kinds[kind]!++;
      const want = full.slice(0, full.indexOf(stop!));
      for (const stream of [false, true]) {
        const got = await answer(route, { ...base, stop: [stop, "never appears"], stream });
        if (got.text !== want || got.finish !== "stop") wrong.push(`seed ${seed} stop ${JSON.stringify(stop)}${stream ? " streamed" : ""}: want ${JSON.stringify(want)}, got ${JSON.stringify(got.text)} (${got.finish})`);
      }
    }
    expect(wrong).toEqual([]);
    // Each shape was really tried: single characters, non-ASCII ones (byte tokens; the tiny model's chat answers
    // have none whole, only U+FFFD), and ones with a space.
    const least = route === "chat" ? [5, 0, 5] : [5, 3, 5];
    expect({ route, kinds }).toEqual({ route, kinds: kinds.map((n, i) => Math.max(n, least[i]!)) });
    expect(kinds[0]! + kinds[1]! + kinds[2]!).toBeGreaterThan(40);
  }, 240_000);
}
