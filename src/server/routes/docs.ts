/**
 * API docs at /swagger (JSON at /swagger/json). The plugin's UI loads its
 * JavaScript from a CDN by default; a sovereign server makes no outbound
 * requests, so the swagger-ui-dist assets are embedded in the binary and served here.
 */
import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import { z } from "zod";
// `type: "file"` embeds the asset into the compiled binary and yields its path.
import bundleJs from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import uiCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import type { AppDeps } from "../deps";

const ASSETS: Record<string, { path: string; type: string }> = {
  "swagger-ui-bundle.js": { path: bundleJs, type: "text/javascript; charset=utf-8" },
  "swagger-ui.css": { path: uiCss, type: "text/css; charset=utf-8" },
};

export const docsRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.docs" })
    .use(openapi({
      path: "/swagger",
      specPath: "/swagger/json",
      provider: "swagger-ui",
      mapJsonSchema: { zod: z.toJSONSchema },
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
      if (!asset) { set.status = 404; return { error: { message: "Unknown asset.", type: "invalid_request_error", param: null, code: "unknown_route" } }; }
      return new Response(Bun.file(asset.path), { headers: { "content-type": asset.type, "cache-control": "public, max-age=86400" } });
    }, { detail: { hide: true } });
