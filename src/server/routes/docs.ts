/**
 * API docs at /swagger (JSON at /swagger/json). The plugin's UI loads its
 * JavaScript from a CDN by default; a sovereign server makes no outbound
 * requests, so the swagger-ui-dist assets are embedded in the binary and served here.
 * With docsPublic (the default) the page, spec and assets need no key (guards/auth.ts); calls
 * made from the page do (Authorize).
 */
import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import { toJSONSchema } from "zod/mini";
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
 * Whether the spec may name what this server serves: the docs need a key (or nothing does). Public docs name no model,
 * tokenizer or version, as /ready names models only to keys that may list them.
 */
const reveals = (deps: AppDeps) => !deps.config.auth || !deps.config.docsPublic;

/** The placeholder model id of public docs' example bodies. */
const PLACEHOLDER_MODEL = "your-model";

/**
 * Try-it-out bodies that work as they are: the served model's real id (not "string", a 404) where the docs may name
 * it, and a small request per route, recognised by a field only it has (the Responses API has `prompt` too, and
 * /tokenize `messages`: they had the completions and chat bodies, a 400).
 */
function withExamples(js: JsonSchema, deps: AppDeps): JsonSchema {
  const p = js.properties;
  if (js.type !== "object" || !p?.model) return js;
  // A gateway may serve upstream models only: theirs then (it had "your-model", and tokenizing that name for the
  // /detokenize example threw, a stack trace on stdout at the first request for the spec).
  const local = reveals(deps) ? deps.engine.models()[0]?.id : undefined;
  const model = local ?? (reveals(deps) ? deps.gateway?.models()[0] : undefined) ?? PLACEHOLDER_MODEL;
  p.model.example = model;
  js.example = p.instructions ? { model, input: "Hello!", max_output_tokens: 64 }
    : p.content ? { model, content: "Hello!" }
    : p.tokens ? { model, tokens: local ? deps.engine.tokenize(local, "Hello!") : [1, 2, 3] }
    : p.messages ? { model, messages: [{ role: "user", content: "Hello!" }], max_tokens: 64 }
    : p.prompt ? { model, prompt: "Once upon a time", max_tokens: 64 }
    : p.input ? { model, input: "Hello!" }
    : undefined;
  return nullableEnums(js) as JsonSchema;
}

/**
 * zod writes a nullable enum as `anyOf: [{enum}, {type: "null"}]`; the OpenAPI plugin folds that into
 * `type: [T, "null"]` and keeps the enum without null, so the spec refused the null the server takes (validators,
 * generated clients). Here null is put in the enum (a const becomes a two-value enum) before the plugin sees it.
 */
function nullableEnums(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(nullableEnums);
  if (!node || typeof node !== "object") return node;
  const o = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, nullableEnums(v)])) as Record<string, unknown>;
  const any = o.anyOf;
  if (Array.isArray(any) && any.length === 2) {
    const nul = any.findIndex((b) => b && typeof b === "object" && (b as { type?: unknown }).type === "null" && Object.keys(b).length === 1);
    const other = any[1 - nul] as Record<string, unknown> | undefined;
    if (nul >= 0 && other && (Array.isArray(other.enum) || "const" in other)) {
      const { anyOf: _, ...rest } = o;
      const values = Array.isArray(other.enum) ? other.enum : [other.const];
      const { const: __, ...kept } = other;
      return { ...rest, ...kept, ...(typeof other.type === "string" ? { type: [other.type, "null"] } : {}), enum: [...values, null] };
    }
  }
  return o;
}

export const docsRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.docs" })
    .use(openapi({
      path: "/swagger",
      specPath: "/swagger/json",
      provider: "swagger-ui",
      mapJsonSchema: { zod: (schema: never, options?: never) => withExamples(toJSONSchema(schema, options) as JsonSchema, deps) },
      exclude: { paths: [/^\/swagger/] },
      swagger: {
        cdn: "/swagger/assets/swagger-ui-bundle.js",
        theme: "/swagger/assets/swagger-ui.css",
        validatorUrl: null,
        persistAuthorization: false,
      } as never,
      documentation: {
        // API docs anyone may read do not say which release answers (no fingerprint for a public page).
        info: { title: "appliance", version: reveals(deps) ? deps.version.app : "1", description: "OpenAI-compatible inference on local GGUF models." },
        components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
        security: [{ bearer: [] }],
      },
    }))
    .get("/swagger/assets/:name", ({ params, set }) => {
      const asset = ASSETS[params.name];
      if (!asset) { set.status = 404; return errorBodyOf({ message: "Unknown asset.", type: "invalid_request_error", param: null, code: "unknown_route" }); }
      return new Response(Bun.file(asset.path), { headers: { "content-type": asset.type, "cache-control": "public, max-age=86400" } });
    }, { detail: { hide: true } });
