/**
 * The docs page's Try-it-out bodies and the spec's schemas against the server itself (an OpenAPI-document run:
 * the /v1/responses and /tokenize examples were the completions and chat bodies, a 400; nullable enums were
 * documented without null, which the server takes, so validators and generated clients refused it).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { listenApp, makeApp } from "../helpers";

let t: Awaited<ReturnType<typeof makeApp>>;
let base: string;
// docs behind the key: the examples name the served model, so each must answer as it is
beforeAll(async () => { t = await makeApp({ config: { docsPublic: false, rateLimit: { rpm: 0, tpm: 0 } } }); base = listenApp(t.app); }, 120_000);
afterAll(async () => { await t.app.stop(true); await t.engine.dispose(); });

const auth = () => ({ authorization: `Bearer ${t.key}`, "content-type": "application/json" });
type Schema = { example?: unknown; properties?: Record<string, Record<string, unknown>>; enum?: unknown[]; type?: unknown };

test("every route's example body is answered 200 as it is", async () => {
  const spec = await (await fetch(`${base}/swagger/json`, { headers: auth() })).json() as { paths: Record<string, { post?: { requestBody: { content: Record<string, { schema: Schema }> } } }> };
  const routes = Object.entries(spec.paths).filter(([, p]) => p.post);
  expect(routes.map(([r]) => r)).toEqual(expect.arrayContaining(["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/tokenize", "/detokenize"]));
  for (const [route, p] of routes) {
    const example = p.post!.requestBody.content["application/json"]!.schema.example;
    expect({ route, example: example !== undefined }).toEqual({ route, example: true });
    const r = await fetch(`${base}${route}`, { method: "POST", headers: auth(), body: JSON.stringify(example) });
    expect({ route, status: r.status }).toEqual({ route, status: 200 });
  }
}, 60_000);

test("a nullable enum or const is documented with null in it, and null is taken", async () => {
  const spec = await (await fetch(`${base}/swagger/json`, { headers: auth() })).json() as { paths: Record<string, { post: { requestBody: { content: Record<string, { schema: Schema }> } } }> };
  const props = (route: string) => spec.paths[route]!.post.requestBody.content["application/json"]!.schema.properties!;
  expect(props("/v1/embeddings").encoding_format!.enum).toEqual(["float", "base64", null]);
  expect(props("/v1/chat/completions").reasoning_effort!.enum).toContain(null);
  expect(props("/v1/responses").background!.enum).toEqual([false, null]);
  const r = await fetch(`${base}/v1/embeddings`, { method: "POST", headers: auth(), body: JSON.stringify({ model: "tiny", input: "x", encoding_format: null }) });
  expect(r.status).toBe(200);
});
