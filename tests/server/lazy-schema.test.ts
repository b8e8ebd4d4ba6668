/**
 * The wire schemas' stand-ins (src/server/openai/lazy-schema.ts): nothing is built until a request validates, and
 * from then on every answer is the real schema's (validation results, issues, JSON Schema, zod's own API).
 */
import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { z } from "zod";
import { lazySchema } from "../../src/server/openai/lazy-schema";
import { chatCompletionRequest } from "../../src/server/openai/wire";
import { chatCompletionRequest as realChat } from "../../src/server/openai/wire-schemas";

const make = () => z.strictObject({ model: z.string().min(1), n: z.number().int().max(4).optional() });

function counted() {
  let builds = 0;
  const schema = lazySchema(() => { builds++; return make(); });
  return { schema, builds: () => builds };
}

describe("lazySchema", () => {
  test("answers Elysia's registration questions without building", () => {
    const { schema, builds } = counted();
    expect("~standard" in schema).toBe(true);
    expect(schema["~standard"].vendor).toBe("zod");
    new Elysia().post("/x", ({ body }) => body, { body: schema, response: { 200: schema } });
    expect(builds()).toBe(0);
  });

  test("validates exactly as the real schema, building it once", () => {
    const { schema, builds } = counted();
    const real = make();
    for (const value of [{ model: "m" }, { model: "", n: 9 }, { model: "m", extra: 1 }, "text", null]) {
      expect(schema["~standard"].validate(value)).toEqual(real["~standard"].validate(value));
    }
    expect(builds()).toBe(1);
  });

  test("any other use is the real schema's", () => {
    const { schema } = counted();
    expect(schema.safeParse({ model: "m", n: 2 })).toEqual({ success: true, data: { model: "m", n: 2 } });
    expect(Object.keys(schema.shape)).toEqual(["model", "n"]);
    expect(schema instanceof z.ZodObject).toBe(true);
    expect(z.toJSONSchema(schema)).toEqual(z.toJSONSchema(make()));
  });

  test("the wire module's stand-ins are the wire schemas", () => {
    const bad = { model: "m", messages: [{ role: "user", content: "hi" }], temperature: 7, nope: 1 };
    expect(chatCompletionRequest["~standard"].validate(bad)).toEqual(realChat["~standard"].validate(bad));
    expect(z.toJSONSchema(chatCompletionRequest)).toEqual(z.toJSONSchema(realChat));
  });

  test("an Elysia route validates through it", async () => {
    const { schema, builds } = counted();
    const app = new Elysia().post("/x", ({ body }) => body, { body: schema });
    const ok = await app.handle(new Request("http://localhost/x", { method: "POST", body: JSON.stringify({ model: "m" }), headers: { "content-type": "application/json" } }));
    expect([ok.status, await ok.json()]).toEqual([200, { model: "m" }]);
    const bad = await app.handle(new Request("http://localhost/x", { method: "POST", body: JSON.stringify({ model: "m", n: 9 }), headers: { "content-type": "application/json" } }));
    expect(bad.status).toBe(422);
    expect(builds()).toBe(1);
  });
});

describe("prepareWireSchemas (serve calls it once listening)", () => {
  test("builds every request schema, so the first request does not; in a fresh process", () => {
    // A child process: in this one other tests may already have built the schemas.
    const wire = new URL("../../src/server/openai/wire.ts", import.meta.url).pathname;
    const responses = new URL("../../src/server/openai/responses-wire.ts", import.meta.url).pathname;
    const script = `
      const w = await import(${JSON.stringify(wire)}); const r = await import(${JSON.stringify(responses)});
      const stands = [w.chatCompletionRequest, w.completionRequest, w.embeddingRequest, w.tokenizeRequest, w.detokenizeRequest, r.responsesRequest];
      const std = () => stands.map((s) => s["~standard"]);
      const before = std();
      await w.prepareWireSchemas();
      const after = std();
      const real = await import(${JSON.stringify(wire.replace(/wire\.ts$/, "wire-schemas.ts"))});
      const realR = await import(${JSON.stringify(responses.replace(/responses-wire\.ts$/, "responses-wire-schemas.ts"))});
      const reals = [real.chatCompletionRequest, real.completionRequest, real.embeddingRequest, real.tokenizeRequest, real.detokenizeRequest, realR.responsesRequest];
      console.log(JSON.stringify({ builtBefore: before.map((s, i) => s === reals[i]["~standard"]), builtAfter: after.map((s, i) => s === reals[i]["~standard"]) }));`;
    const r = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(JSON.parse(r.stdout.toString())).toEqual({ builtBefore: Array(6).fill(false), builtAfter: Array(6).fill(true) });
  });
});
