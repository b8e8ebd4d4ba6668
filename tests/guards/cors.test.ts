/**
 * CORS for a browser app using the official openai SDK: the preflight must allow every header the SDK sends
 * (its x-stainless-* set, openai-organization/-project), or the browser blocks every call; and browser code must be
 * able to read retry-after, x-request-id and x-ratelimit-*. The header list is recorded from a real SDK call.
 */
import { afterAll, expect, test } from "bun:test";
import OpenAI from "openai";
import { listenApp, makeApp } from "../helpers";

const ORIGIN = "http://app.example";
const ctx = await makeApp({ config: { corsOrigins: [ORIGIN] } });
const base = listenApp(ctx.app);
afterAll(async () => { await ctx.app.stop(); await ctx.engine.dispose(); });

/** Names a browser sets itself or never lists in Access-Control-Request-Headers (safelisted or forbidden). */
const BROWSER_OWN = new Set(["accept", "accept-encoding", "connection", "host", "content-length", "user-agent"]);

/** Every header name the openai SDK puts on a chat call (organization and project set), as a browser would list them. */
async function sdkHeaderNames(): Promise<string[]> {
  const names = new Set<string>();
  const recording = (async (input: string | URL | Request, init?: RequestInit) => {
    for (const [k] of new Headers(init?.headers)) names.add(k.toLowerCase());
    return fetch(input, init);
  }) as typeof fetch;
  const client = new OpenAI({ apiKey: ctx.key, baseURL: `${base}/v1`, organization: "org-1", project: "proj-1", maxRetries: 0, fetch: recording });
  await client.chat.completions.create({ model: "tiny", max_tokens: 1, messages: [{ role: "user", content: "hi" }] });
  // x-stainless-timeout: sent by other SDK versions (the red team's); a browser lists names sorted, lower case
  return [...names, "x-stainless-timeout"].filter((n) => !BROWSER_OWN.has(n)).sort();
}

test("a preflight as a browser sends it for the openai SDK allows every header; responses expose the rate-limit headers", async () => {
  const requested = await sdkHeaderNames();
  expect(requested).toEqual(expect.arrayContaining(["authorization", "content-type", "openai-organization", "openai-project", "x-stainless-lang", "x-stainless-retry-count"]));
  const preflight = await fetch(`${base}/v1/chat/completions`, { method: "OPTIONS", headers: {
    origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": requested.join(","),
  } });
  expect(preflight.status).toBe(204);
  expect(preflight.headers.get("access-control-allow-origin")).toBe(ORIGIN);
  const allowed = preflight.headers.get("access-control-allow-headers")!.split(",").map((h) => h.trim());
  expect(requested.filter((h) => !allowed.includes(h))).toEqual([]);
  expect(preflight.headers.get("vary")).toContain("access-control-request-headers");

  const res = await fetch(`${base}/v1/models`, { headers: { origin: ORIGIN, authorization: `Bearer ${ctx.key}` } });
  expect(res.status).toBe(200);
  const exposed = res.headers.get("access-control-expose-headers")!.split(",").map((h) => h.trim());
  for (const h of ["retry-after", "x-request-id", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"]) expect(exposed).toContain(h);
  const refused = await fetch(`${base}/v1/models`, { headers: { origin: ORIGIN } }); // errors too: a 401 is read by browser code
  expect(refused.status).toBe(401);
  expect(refused.headers.get("access-control-expose-headers")).toContain("x-request-id");
});

test("a request-headers list that is not plain header tokens gets our own list only; other origins get nothing", async () => {
  const odd = await fetch(`${base}/v1/models`, { method: "OPTIONS", headers: { origin: ORIGIN, "access-control-request-method": "GET", "access-control-request-headers": "authorization, x-a(b)" } });
  expect(odd.headers.get("access-control-allow-headers")).toBe("authorization, content-type, x-api-key, x-appliance-timestamp, x-appliance-signature");
  const other = await fetch(`${base}/v1/models`, { method: "OPTIONS", headers: { origin: "http://other.example", "access-control-request-method": "GET", "access-control-request-headers": "authorization" } });
  for (const h of ["access-control-allow-origin", "access-control-allow-headers", "access-control-expose-headers"]) expect(other.headers.get(h)).toBeNull();
});
