/** GET /v1/models, GET /v1/models/{id} */
import { Elysia, t } from "elysia";
import { ModelNotFoundError } from "../../errors";
import { modelObject } from "../openai/convert";
import { errorBody, modelList, modelObject as modelSchema } from "../openai/wire";
import type { AppDeps } from "../deps";
import { upstreamModel, upstreamModels } from "../upstream/models";

export const modelRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.models" })
    .get("/v1/models", () => ({ object: "list" as const, data: [...deps.engine.models().map(modelObject), ...upstreamModels(deps)] }), {
      detail: { summary: "List the models this server serves", tags: ["OpenAI"] },
      response: { 200: modelList, 401: errorBody },
    })
    .get("/v1/models/:id", ({ params, path }) => {
      // An id that is not valid percent-encoding (`/v1/models/%zz`) Elysia decodes to null: no model has it (it was
      // a 400 naming params' "/id").
      const id = params.id ?? path.slice("/v1/models/".length);
      const m = deps.engine.model(id);
      if (!m && deps.gateway?.serves(id)) return upstreamModel(deps, id);
      if (!m) throw new ModelNotFoundError(id);
      return modelObject(m);
    }, {
      params: t.Object({ id: t.Union([t.String(), t.Null()]) }),
      detail: { summary: "Describe one model", tags: ["OpenAI"] },
      response: { 200: modelSchema, 401: errorBody, 404: errorBody },
    });
