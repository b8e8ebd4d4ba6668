/**
 * Issue 11 (per-request cost): the request summary line is written without pino's redaction (log/logger.ts
 * `unredacted`), which found nothing to censor in it and cost ~17 us of a small request's CPU. That is safe only while
 * the line carries no field REDACT censors. Through the app, each kind of request line — a keyed GET, a chat with
 * `logPrompts` on (prompt and response in the line, the prompt naming a key and a secret), a request refused with an
 * error code: no field at any depth has a redacted name, and the bytes are exactly those the redacting logger writes.
 */
import { afterAll, expect, test } from "bun:test";
import { createLogger, REDACT, REDACTED_FIELDS, silentLogger, unredacted } from "../../src/log/logger";
import { makeApp, makeEngine, req } from "../helpers";

const engine = makeEngine();
afterAll(async () => (await engine).dispose());

/** Every key of `v`, at any depth. */
function keysOf(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) keysOf(x, out);
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) { out.push(k); keysOf(x, out); }
  return out;
}

/** What the redacting logger writes for `fields` (one line, as the app's logger would with redaction). */
function redactedLine(fields: Record<string, unknown>): string {
  let out = "";
  createLogger("info", { write: (s: string) => { out = s; return true } } as never).info(fields, "request");
  return out;
}

const withoutTime = (line: string) => line.replace(/"time":"[^"]*"/, '"time":""');

test("REDACTED_FIELDS names every field REDACT censors, and no REDACT path is deeper than unredacted's type looks (two levels)", () => {
  for (const p of REDACT) {
    expect(p.replace(/\["[^"]*"\]/g, ".x").split(".").length).toBeLessThanOrEqual(2);
    const last = /(?:^|\.)([\w-]+)$|\["([^"]+)"\]$/.exec(p)!;
    expect(REDACTED_FIELDS as readonly string[]).toContain(last[1] ?? last[2]!);
  }
});

test("the request line has no field the logger redacts, and is byte for byte what the redacting logger writes", async () => {
  const raw: string[] = [];
  let want = 0, done: () => void = () => {};
  const all = new Promise<void>((resolve) => { done = resolve; });
  const log = createLogger("info", { write: (s: string) => {
    raw.push(s);
    if (raw.filter((l) => l.includes('"msg":"request"')).length === want) done();
    return true;
  } } as never);
  const ctx = await makeApp({ engine: await engine, log, config: { logPrompts: true } });
  const asks = [
    req("/v1/models", { key: ctx.key }),
    req("/v1/chat/completions", { key: ctx.key, json: { model: "tiny", max_tokens: 4,
      messages: [{ role: "user", content: 'key: "sk-proj-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv" secret=hunter2 authorization: Bearer x' }] } }),
    req("/v1/models"), // no key: 401 with a code
    req("/v1/chat/completions", { key: ctx.key, json: { model: "tiny", messages: "not a list" } }), // 400 with a code
  ];
  want = asks.length;
  const statuses: number[] = [];
  for (const r of asks) { const res = await ctx.app.handle(r); await res.arrayBuffer(); statuses.push(res.status); }
  await all;
  expect(statuses).toEqual([200, 200, 401, 400]);
  const lines = raw.filter((l) => l.includes('"msg":"request"'));
  expect(lines).toHaveLength(4);
  for (const line of lines) {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    for (const k of keysOf(parsed)) expect(REDACTED_FIELDS as readonly string[]).not.toContain(k);
    const { level: _l, time: _t, app: _a, msg: _m, ...fields } = parsed;
    expect(withoutTime(line)).toBe(withoutTime(redactedLine(fields)));
  }
  const [models, chat, refused] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(models!.keyName).toBe("test");
  expect(String(chat!.prompt)).toContain("sk-proj-"); // logPrompts: the text is in the line, as before (not a field name)
  expect(refused!.code).toBeString();
});

/**
 * unredacted's type refuses, at compile time (tsc over tests/, part of `npm test`), every line that could carry a field
 * REDACT censors — directly, one level down, in one member of a union, or behind names it cannot see (an index
 * signature, any, unknown) — and takes the request line's own shape. (Review of d2eaecf: each refused call below
 * compiled with the first version of the type.)
 */
test("unredacted's type takes the request line and refuses what redaction would have censored", () => {
  const lines: unknown[] = [];
  const log = unredacted(silentLogger());
  const c = lines.length > 0, rec: Record<string, unknown> = {}, hdrs: Record<string, string> = {};
  const anyv = JSON.parse("{}"), unk: unknown = undefined;
  const rest = { reqId: "r", traceId: "t" as string | undefined, route: "GET /", status: 200, model: undefined as string | undefined,
    promptTokens: undefined as number | undefined, completionTokens: undefined as number | undefined, decisions: [] as string[], ms: 1, client: "c" };
  const code = undefined as string | undefined, prompt = undefined as string | undefined, response = undefined as string | undefined;
  log.info({ ...rest, keyName: "k", ...(code ? { code } : {}), ...(prompt !== undefined ? { prompt, response } : {}) }, "request");
  // @ts-expect-error a redacted name
  log.info({ key: "sk" }, "x");
  // @ts-expect-error one level down
  log.info({ a: { secret: "x" } }, "x");
  // @ts-expect-error a header REDACT names
  log.info({ headers: { "x-api-key": "k" } }, "x");
  // @ts-expect-error names it cannot see: an index signature
  log.info({ ...rec }, "x");
  // @ts-expect-error an index signature one level down
  log.info({ headers: hdrs }, "x");
  // @ts-expect-error any
  log.info(anyv, "x");
  // @ts-expect-error in one member of a union
  log.info({ reqId: "r", ...(c ? { key: "sk" } : { other: 1 }) }, "x");
  // @ts-expect-error a field that may be an object with a redacted name
  log.info({ model: c ? "m" : { key: "sk" } }, "x");
  // @ts-expect-error unknown
  log.info({ extra: unk }, "x");
  // @ts-expect-error a computed name
  log.info({ ["ke" + "y"]: "sk" }, "x");
  expect(lines).toEqual([]); // silent: nothing written, the calls are here for the compiler
});
