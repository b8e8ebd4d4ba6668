/** POST /v1/embeddings */
import { Elysia } from "elysia";
import { checkEmbeddingInputs } from "../../guards/bounds";
import { CancelledError } from "../../errors";
import { embeddingList } from "../openai/convert";
import { embeddingRequest, errorBody, embeddingListObject } from "../openai/wire";
import type { AppDeps } from "../deps";
import { prologue } from "./prologue";

export const embeddingRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.embeddings" }).post("/v1/embeddings", async ({ body, request }) => {
    const p = prologue(deps, request, "embeddings", body);
    if (p.forwarded) return p.forwarded as Promise<never>; // a Response: no 200-schema check
    const { state, info } = p;
    const i = body.input;
    const texts: (string | number[])[] = typeof i === "string" ? [i] : typeof i[0] === "number" ? [i as number[]] : i as (string | number[])[];
    checkEmbeddingInputs(texts, deps.config);
    // Text goes through the prompt guard; token ids are embedded as given (nothing is generated from them).
    const strings = texts.filter((t) => typeof t === "string");
    // No messages among them (0): the inputs were counted just above, against their own bound, not maxMessages.
    const guarded = deps.promptGuard(state, info.id, strings.map((content) => ({ role: "user" as const, content })), 0).map((t) => t.content);
    const inputs = texts.map((t) => (typeof t === "string" ? guarded.shift()! : t));
    const flight = deps.inflight.begin(request.signal);
    try {
      const result = await deps.engine.embed(info.id, inputs, flight.signal);
      state.promptTokens = result.promptTokens;
      state.completionTokens = 0;
      deps.settle(state);
      return embeddingList(info.id, result, body.encoding_format === "base64", body.dimensions ?? undefined);
    } catch (e) {
      throw flight.signal.aborted ? (flight.cut()?.() ?? new CancelledError()) : e; // the server's cut: its 503
    } finally {
      flight.end();
    }
  }, {
    body: embeddingRequest,
    parse: "json", // documents the content type; the global parser in app.ts runs first
    detail: { summary: "Create embeddings (text or token-id input, one or many; optional dimensions)", tags: ["OpenAI"] },
    response: { 200: embeddingListObject, 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody, 503: errorBody },
  });
