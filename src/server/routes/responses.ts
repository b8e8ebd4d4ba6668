/** POST /v1/responses (OpenAI's Responses API; stateless: nothing is stored). */
import { Elysia } from "elysia";
import { includeUsage, thinkingOf, toSampling, toToolUse } from "../openai/convert";
import { asChatRequest, newFrame, responseEvents, responseObject, responsesTurns } from "../openai/responses";
import { responsesRequest } from "../openai/responses-wire";
import { errorBody, responseObjectShape } from "../openai/wire";
import type { AppDeps } from "../deps";
import { prologue } from "./prologue";
import { runGeneration } from "./generate";
import { guardChat } from "./guard-chat";
import { asResponsesError } from "../openai/responses-errors";

export const responsesRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.responses" }).post("/v1/responses", async ({ body, request }) => {
    const p = prologue(deps, request, "responses", body);
    if (p.forwarded) return p.forwarded;
    const { state, info } = p;
    try {
      const specials = deps.engine.specialTokens(info.id);
      includeUsage(body); // stream_options without stream is a 400, as on chat and completions (a Responses stream has no usage chunk)
      const chat = asChatRequest(body);
      const thinking = thinkingOf(chat);
      const sampling = toSampling(chat, deps.config, info.contextSize, specials);
      const { messages, tools } = guardChat(deps, state, info.id, responsesTurns(body, deps.config.limits), toToolUse(chat, specials));
      if (deps.config.logPrompts) state.promptText = JSON.stringify(messages);
      const frame = newFrame("resp_" + Buffer.from(state.id.slice(4), "base64url").toString("hex"), info.id, Math.floor(deps.clock() / 1000), body);
      const events = responseEvents(frame);
      // The 200 schema documents the answer; the converters build it (typed as the Response a stream is).
      return await runGeneration(request, state, deps, {
        stream: body.stream ?? false,
        includeUsage: false,
        named: true,
        choices: 1,
        perPrompt: 1,
        logprobs: sampling.logprobs != null,
        jsonText: !!sampling.format,
        call: (signal, _choice, hooks) => deps.engine.chat({ model: info.id, messages, tools, sampling, signal, ...hooks, ...(thinking === false && { thinking }) }),
        full: ([g]) => responseObject(frame, g!, events.messageId),
        head: () => events.head(),
        piece: events.piece,
        thought: events.thought,
        end: (_finish, g) => events.end(g),
        usage: () => [],
      }) as Promise<Response>;
    } catch (e) {
      throw asResponsesError(e); // the chat path's refusals, named as the client's fields
    }
  }, {
    body: responsesRequest,
    parse: "json", // documents the content type; the global parser in app.ts runs first
    detail: { summary: "Create a model response (Responses API; stateless, streams with stream: true)", tags: ["OpenAI"] },
    response: { 200: responseObjectShape, 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody, 503: errorBody },
  });
