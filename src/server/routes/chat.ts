/** POST /v1/chat/completions */
import { Elysia } from "elysia";
import { ModelNotFoundError } from "../../errors";
import { chatChunk, chatCompletion, choiceCount, choiceSampling, toolCallsDelta, toSampling, toToolUse, toTurns, usageChunk } from "../openai/convert";
import { chatCompletionRequest, errorBody, chatCompletionObject } from "../openai/wire";
import { stateOf } from "../request-state";
import type { AppDeps } from "../deps";
import { forwardUpstream } from "../upstream/forward";
import { runGeneration } from "./generate";
import { guardChat } from "./guard-chat";

export const chatRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.chat" }).post("/v1/chat/completions", async ({ body, request }) => {
    const state = stateOf(request);
    if (deps.gateway?.serves(body.model)) return forwardUpstream(deps, request, state, "chat", body);
    const info = deps.engine.model(body.model);
    if (!info) throw new ModelNotFoundError(body.model);
    state.model = info.id;
    const specials = deps.engine.specialTokens(info.id);
    const sampling = toSampling(body, deps.config, info.contextSize, specials);
    const { messages, tools } = guardChat(deps, state, info.id, toTurns(body), toToolUse(body, specials));
    if (deps.config.logPrompts) state.promptText = JSON.stringify(messages);
    const id = "chatcmpl-" + state.id.slice(4);
    const created = Math.floor(deps.clock() / 1000);
    const n = body.n ?? 1;
    // The 200 schema documents the answer; the converters build it (typed as the Response a stream is).
    return runGeneration(request, state, deps, {
      stream: body.stream ?? false,
      includeUsage: body.stream_options?.include_usage ?? false,
      choices: choiceCount(n, 1, body.stream ?? false),
      perPrompt: n,
      call: (signal, choice, onText, onAdmitted) =>
        deps.engine.chat({ model: info.id, messages, tools, sampling: choiceSampling(sampling, choice, n), signal, onText, onAdmitted }),
      full: (gs) => chatCompletion(id, info.id, created, gs),
      head: () => chatChunk(id, info.id, created, { role: "assistant", content: "" }, null),
      piece: (text) => chatChunk(id, info.id, created, { content: text }, null),
      calls: (calls) => chatChunk(id, info.id, created, toolCallsDelta(calls), null),
      end: (finish) => chatChunk(id, info.id, created, {}, finish),
      usage: (g) => usageChunk(id, "chat.completion.chunk", info.id, created, g),
    }) as Promise<Response>;
  }, {
    body: chatCompletionRequest,
    parse: "json", // documents the content type; the global parser in app.ts runs first
    detail: { summary: "Create a chat completion (streams with stream: true)", tags: ["OpenAI"] },
    response: { 200: chatCompletionObject, 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody, 503: errorBody },
  });
