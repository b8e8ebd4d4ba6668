/**
 * Issue 9 item 1: `[` × 30,000 + `]` × 30,000 (60 KB) blocked the event loop
 * for seconds and took gigabytes: the framework's validation error serialised
 * the whole rejected value, indented (quadratic in depth), and deeper bodies
 * overflowed the stack into a 500. Over real HTTP: the depth/width bound
 * answers 400 at once, /health keeps answering while the attack runs, and no
 * error path copies the request into a response or a log line.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { listenApp, makeApp, memoryLogger } from "../helpers";

let ctx: Awaited<ReturnType<typeof makeApp>>;
let base: string;
const mem = memoryLogger();
beforeAll(async () => {
  ctx = await makeApp({ log: mem.log, config: { rateLimit: { rpm: 0, tpm: 0 } } });
  base = listenApp(ctx.app);
});
afterAll(async () => { await ctx.app.stop(true); await ctx.engine.dispose(); });

const post = (path: string, body: string) => fetch(base + path, { method: "POST", body,
  headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" } });
const nested = (n: number, inner = "") => "[".repeat(n) + inner + "]".repeat(n);
const errorOf = async (r: Response) => ({ status: r.status, code: ((await r.json()) as { error: { code: string } }).error.code });

test("a 60 KB and an 80 KB bracket bomb get 400 json_too_deep on every body route", async () => {
  for (const path of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]) {
    expect(await errorOf(await post(path, nested(30_000)))).toEqual({ status: 400, code: "json_too_deep" });
    expect(await errorOf(await post(path, nested(40_000)))).toEqual({ status: 400, code: "json_too_deep" });
  }
});

test("the deep value inside an ordinary field, and brackets inside strings do not count", async () => {
  const inField = `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"user":${nested(30_000)}}`;
  expect(await errorOf(await post("/v1/chat/completions", inField))).toEqual({ status: 400, code: "json_too_deep" });
  // 100 levels of brackets inside a string: over the depth bound if strings counted
  const inString = JSON.stringify({ model: "tiny", messages: [{ role: "user", content: nested(100) + "\"\\" }], max_tokens: 1 });
  expect((await post("/v1/chat/completions", inString)).status).toBe(200);
});

test("the bounds are settings: limits.jsonMaxDepth and limits.jsonMaxWidth", async () => {
  const strict = await makeApp({ engine: ctx.engine, config: { rateLimit: { rpm: 0, tpm: 0 }, limits: { jsonMaxDepth: 8, jsonMaxWidth: 100 } } });
  const url = listenApp(strict.app);
  const send = (body: string) => fetch(url + "/v1/embeddings", { method: "POST", body,
    headers: { authorization: `Bearer ${strict.key}`, "content-type": "application/json" } });
  expect(await errorOf(await send(`{"model":"tiny","input":${nested(8, "1")}}`))).toEqual({ status: 400, code: "json_too_deep" });
  expect(await errorOf(await send(`{"model":"tiny","input":[${Array(101).fill("1").join(",")}]}`))).toEqual({ status: 400, code: "json_too_wide" });
  expect((await send(`{"model":"tiny","input":[${Array(100).fill("\"a\"").join(",")}]}`)).status).toBe(200);
  await strict.app.stop(true);
});

test("a huge flat array gets 400 json_too_wide", async () => {
  const wide = `{"model":"tiny","input":[${Array(100_000).fill("0").join(",")}]}`;
  expect(await errorOf(await post("/v1/embeddings", wide))).toEqual({ status: 400, code: "json_too_wide" });
});

test("a rejected value under the bounds is never copied into the error or the log", async () => {
  const marker = "MARKER_" + "q".repeat(40);
  const body = `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"user":${nested(60, JSON.stringify(marker))}}`;
  const r = await post("/v1/chat/completions", body);
  const text = await r.text();
  expect(r.status).toBe(400);
  expect(text).not.toContain(marker);
  expect(JSON.stringify(mem.lines)).not.toContain(marker);
});

test("/health keeps answering while nesting attacks run", async () => {
  let attacking = true;
  const attacks = Promise.all(Array.from({ length: 4 }, async () => {
    const codes: number[] = [];
    for (let i = 0; i < 10; i++) codes.push((await post("/v1/chat/completions", nested(30_000))).status);
    return codes;
  })).finally(() => { attacking = false; });
  const health: number[] = [];
  while (attacking || health.length < 5) health.push((await fetch(`${base}/health`)).status);
  expect((await attacks).flat().every((s) => s === 400)).toBe(true);
  expect(health.every((s) => s === 200)).toBe(true);
});
