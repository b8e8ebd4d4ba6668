/**
 * API docs at /swagger (JSON at /swagger/json). The plugin's UI loads its
 * JavaScript from a CDN by default; a sovereign server makes no outbound
 * requests, so the swagger-ui-dist assets are embedded in the binary and served here.
 * With docsPublic (the default) the page, spec and assets need no key (guards/auth.ts); calls
 * made from the page do (Authorize).
 */
import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import { z } from "zod";
// `type: "file"` embeds the asset into the compiled binary and yields its path.
import bundleJs from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import uiCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import type { AppDeps } from "../deps";
import { errorBodyOf } from "../errors";

const ASSETS: Record<string, { path: string; type: string }> = {
  "swagger-ui-bundle.js": { path: bundleJs, type: "text/javascript; charset=utf-8" },
  "swagger-ui.css": { path: uiCss, type: "text/css; charset=utf-8" },
};

type JsonSchema = { type?: unknown; properties?: Record<string, Record<string, unknown>>; example?: unknown };

/**
 * Try-it-out bodies that work as they are: the served model's real id (not "string", a 404) and a
 * small request per route, recognised by its fields.
 */
function withExamples(js: JsonSchema, deps: AppDeps): JsonSchema {
  const p = js.properties;
  if (js.type !== "object" || !p?.model) return js;
  // A gateway may serve upstream models only: theirs then (it had "your-model", and tokenizing that name for the
  // /detokenize example threw, a stack trace on stdout at the first request for the spec).
  const local = deps.engine.models()[0]?.id;
  const model = local ?? deps.gateway?.models()[0] ?? "your-model";
  p.model.example = model;
  js.example = p.messages ? { model, messages: [{ role: "user", content: "Hello!" }], max_tokens: 64 }
    : p.prompt ? { model, prompt: "Once upon a time", max_tokens: 64 }
    : p.instructions ? { model, input: "Hello!", max_output_tokens: 64 }
    : p.input ? { model, input: "Hello!" }
    : p.content ? { model, content: "Hello!" }
    : p.tokens ? { model, tokens: local ? deps.engine.tokenize(local, "Hello!") : [1, 2, 3] }
    : undefined;
  return js;
}

export const docsRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.docs" })
    .use(openapi({
      path: "/swagger",
      specPath: "/swagger/json",
      provider: "swagger-ui",
      mapJsonSchema: { zod: (schema: never, options?: never) => withExamples(z.toJSONSchema(schema, options) as JsonSchema, deps) },
      exclude: { paths: [/^\/swagger/] },
      swagger: {
        cdn: "/swagger/assets/swagger-ui-bundle.js",
        theme: "/swagger/assets/swagger-ui.css",
        validatorUrl: null,
        persistAuthorization: false,
      } as never,
      documentation: {
        info: { title: "appliance", version: deps.version.app, description: "OpenAI-compatible inference on local GGUF models." },
        components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
        security: [{ bearer: [] }],
      },
    }))
    .get("/swagger/assets/:name", ({ params, set }) => {
      const asset = ASSETS[params.name];
      if (!asset) { set.status = 404; return errorBodyOf({ message: "Unknown asset.", type: "invalid_request_error", param: null, code: "unknown_route" }); }
      return new Response(Bun.file(asset.path), { headers: { "content-type": asset.type, "cache-control": "public, max-age=86400" } });
    }, { detail: { hide: true } });
