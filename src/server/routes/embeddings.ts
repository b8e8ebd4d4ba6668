/** POST /v1/embeddings */
import { Elysia } from "elysia";
import { CancelledError, InvalidRequestError, ModelNotFoundError } from "../../errors";
import { embeddingList } from "../openai/convert";
import { embeddingRequest, errorBody } from "../openai/wire";
import { stateOf } from "../request-state";
import type { AppDeps } from "../app";

export const embeddingRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.embeddings" }).post("/v1/embeddings", async ({ body, request }) => {
    const state = stateOf(request);
    const info = deps.engine.model(body.model);
    if (!info) throw new ModelNotFoundError(body.model);
    state.model = info.id;
    const texts = typeof body.input === "string" ? [body.input] : body.input;
    // The message bounds, stated in this route's own terms (the guard would name `messages`).
    if (texts.length > deps.config.maxMessages) {
      throw new InvalidRequestError(`Too many inputs: ${texts.length} (max ${deps.config.maxMessages}).`, "input", "too_many_inputs");
    }
    const chars = texts.reduce((n, t) => n + t.length, 0);
    if (chars > deps.config.maxPromptChars) {
      throw new InvalidRequestError(`Input is ${chars} characters (max ${deps.config.maxPromptChars}).`, "input", "input_too_long");
    }
    const inputs = deps.promptGuard(state, info.id, texts.map((content) => ({ role: "user" as const, content })));
    const flight = deps.inflight.begin(request.signal);
    try {
      const result = await deps.engine.embed(info.id, inputs.map((t) => t.content), flight.signal);
      state.promptTokens = result.promptTokens;
      state.completionTokens = 0;
      deps.settle(state);
      return embeddingList(info.id, result, body.encoding_format === "base64");
    } catch (e) {
      throw flight.signal.aborted ? new CancelledError() : e;
    } finally {
      flight.end();
    }
  }, {
    body: embeddingRequest,
    parse: "json", // documents the content type; the global parser in app.ts runs first
    detail: { summary: "Create embeddings (string or array input)", tags: ["OpenAI"] },
    response: { 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody },
  });
