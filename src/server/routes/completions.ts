/** POST /v1/completions (legacy text completions) */
import { Elysia } from "elysia";
import { ModelNotFoundError } from "../../errors";
import { promptText, textChunk, textCompletion, toSampling, usageChunk } from "../openai/convert";
import { completionRequest, errorBody } from "../openai/wire";
import { stateOf } from "../request-state";
import type { AppDeps } from "../app";
import { runGeneration } from "./generate";

export const completionRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.completions" }).post("/v1/completions", async ({ body, request }) => {
    const state = stateOf(request);
    const info = deps.engine.model(body.model);
    if (!info) throw new ModelNotFoundError(body.model);
    state.model = info.id;
    const sampling = toSampling(body, deps.config, info.contextSize, deps.engine.specialTokens(info.id));
    const [turn] = deps.promptGuard(state, info.id, [{ role: "user", content: promptText(body) }]);
    const prompt = turn!.content;
    if (deps.config.logPrompts) state.promptText = prompt;
    const id = "cmpl-" + state.id.slice(4);
    const created = Math.floor(deps.clock() / 1000);
    return runGeneration(request, state, deps, {
      stream: body.stream ?? false,
      includeUsage: body.stream_options?.include_usage ?? false,
      call: (signal, onText, onAdmitted) => deps.engine.complete({ model: info.id, prompt, sampling, signal, onText, onAdmitted }),
      full: (g) => textCompletion(id, info.id, created, g),
      piece: (text) => textChunk(id, info.id, created, text, null),
      end: (finish) => textChunk(id, info.id, created, "", finish),
      usage: (g) => usageChunk(id, "text_completion", info.id, created, g),
    });
  }, {
    body: completionRequest,
    parse: "json", // documents the content type; the global parser in app.ts runs first
    detail: { summary: "Create a text completion (streams with stream: true)", tags: ["OpenAI"] },
    response: { 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody, 503: errorBody },
  });
