/**
 * A burst's admission work is spread over loop turns (src/server/admission-turn.ts, issue 11 item 1): four
 * requests handed to the app together used to be validated, guarded, templated and tokenized in one turn, so
 * every timer and open stream waited for all four (6-9 ms at 155 M params). Observed by calling through the
 * engine's own chat (spied, nothing replaced): a callback queued when the first request reaches the engine runs
 * before the last one gets there.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { makeApp, req } from "../helpers";

let t: Awaited<ReturnType<typeof makeApp>>;
beforeAll(async () => { t = await makeApp({ config: { rateLimit: { rpm: 0, tpm: 0 } } }); }, 120_000);
afterAll(async () => { await t.engine.dispose(); });

test("four chat requests arriving together: the loop runs other callbacks between their admissions", async () => {
  const order: string[] = [];
  const chat = t.engine.chat.bind(t.engine);
  t.engine.chat = (call) => {
    order.push("request");
    if (order.length === 1) setImmediate(() => order.push("other callback"));
    return chat(call);
  };
  try {
    const body = { model: "tiny", max_tokens: 1, temperature: 0, messages: [{ role: "user", content: "hello world" }] };
    const rs = await Promise.all([0, 1, 2, 3].map(() => t.app.handle(req("/v1/chat/completions", { key: t.key, json: body }))));
    for (const r of rs) expect(r.status).toBe(200);
    await Promise.all(rs.map((r) => r.arrayBuffer()));
    expect(order.filter((o) => o === "request").length).toBe(4);
    // Before: request ×4, then the callback (all four admitted in one turn).
    expect(order.indexOf("other callback")).toBeLessThan(order.lastIndexOf("request"));
  } finally {
    t.engine.chat = chat;
  }
}, 60_000);

test("a lone request still answers (one turn's wait)", async () => {
  const r = await t.app.handle(req("/v1/chat/completions", { key: t.key, json: { model: "tiny", max_tokens: 2, messages: [{ role: "user", content: "hi" }] } }));
  expect(r.status).toBe(200);
  expect(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBeGreaterThan(0);
}, 60_000);
