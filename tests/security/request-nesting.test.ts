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

// Red-team finding: JSON inside a string field (a tool call's arguments, a tool's result) is parsed by the engine and
// walked recursively into the prompt, out of the body check's sight: 80 KB of brackets in a tool result held the
// event loop 6.5 s and took 2.3 GB; ~50,000 levels overflowed the stack into a 500.
const call = { id: "c1", type: "function", function: { name: "f", arguments: "{}" } };
const chatWith = (toolResult: string, args = "{}") => JSON.stringify({ model: "tiny", max_tokens: 2, messages: [
  { role: "user", content: "hi" }, { role: "assistant", content: null, tool_calls: [{ ...call, function: { name: "f", arguments: args } }] },
  { role: "tool", tool_call_id: "c1", content: toolResult }] });
const responsesWith = (output: string, args = "{}") => JSON.stringify({ model: "tiny", max_output_tokens: 16, input: [
  { role: "user", content: "hi" }, { type: "function_call", call_id: "c1", name: "f", arguments: args },
  { type: "function_call_output", call_id: "c1", output }] });
const errorBody = async (r: Response) => ({ status: r.status, ...((await r.json()) as { error: { code: string; param: string } }).error });

test("deep JSON in a tool result or in call arguments: 400 json_too_deep naming the field", async () => {
  const bomb = nested(12_000); // before: ~1.5 s of blocked event loop each, then an answer
  const cases: [string, string, string][] = [
    ["/v1/chat/completions", chatWith(bomb), "messages[2].content"],
    ["/v1/chat/completions", chatWith("[]", bomb), "messages[1].tool_calls[0].function.arguments"],
    ["/v1/responses", responsesWith(bomb), "input[2].output"],
    ["/v1/responses", responsesWith("[]", bomb), "input[1].arguments"],
  ];
  for (const [path, body, param] of cases) {
    expect(await errorBody(await post(path, body))).toMatchObject({ status: 400, code: "json_too_deep", param });
  }
  const wide = `[${Array(100_000).fill("0").join(",")}]`;
  expect(await errorBody(await post("/v1/chat/completions", chatWith(wide)))).toMatchObject({ status: 400, code: "json_too_wide", param: "messages[2].content" });
});

test("a tool result that is text, not JSON, may hold any brackets; JSON within the bounds is fine", async () => {
  expect((await post("/v1/chat/completions", chatWith(`${"[".repeat(200)} not JSON`))).status).toBe(200);
  expect((await post("/v1/chat/completions", chatWith(nested(20, "1"), JSON.stringify({ a: JSON.parse(nested(20, "1")) })))).status).toBe(200);
  expect((await post("/v1/responses", responsesWith(nested(20, "1")))).status).toBe(200);
});
