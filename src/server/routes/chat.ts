/** POST /v1/chat/completions */
import { Elysia } from "elysia";
import { chatLogprobs } from "../openai/logprob-wire";
import { chatChunk, chatCompletion, choiceCount, thinkingOf, choiceSampling, functionCallDelta, includeUsage, legacyFinish, usesFunctions, toolCallsDelta, toSampling, toToolUse, toTurns, usageChunk } from "../openai/convert";
import { chatCompletionRequest, errorBody, chatCompletionObject } from "../openai/wire";
import type { AppDeps } from "../deps";
import { prologue } from "./prologue";
import { runGeneration } from "./generate";
import { guardChat } from "./guard-chat";
import { stopsAfterScan } from "../stop-after-scan";

export const chatRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.chat" }).post("/v1/chat/completions", async ({ body, request }) => {
    const p = prologue(deps, request, "chat", body);
    if (p.forwarded) return p.forwarded;
    const { state, info } = p;
    const specials = deps.engine.specialTokens(info.id);
    const sampling = toSampling(body, deps.config, info.contextSize, specials);
    const { messages, tools } = guardChat(deps, state, info.id, toTurns(body, deps.config.limits), toToolUse(body, specials));
    if (deps.config.logPrompts) state.promptText = JSON.stringify(messages);
    const id = "chatcmpl-" + state.id.slice(4);
    const created = Math.floor(deps.clock() / 1000);
    const n = body.n ?? 1;
    const legacy = usesFunctions(body);
    const forced = !!tools && tools.choice !== "auto";
    const thinking = thinkingOf(body);
    // Looked for in the text as sent, after the response scanner (stop-after-scan.ts); a forced call ignores them.
    const stops = stopsAfterScan(deps.config, forced ? undefined : sampling.stop);
    // The 200 schema documents the answer; the converters build it (typed as the Response a stream is).
    return runGeneration(request, state, deps, {
      stream: body.stream ?? false,
      includeUsage: includeUsage(body),
      choices: choiceCount(n, 1),
      perPrompt: n,
      logprobs: sampling.logprobs != null,
      jsonText: !!sampling.format,
      stop: stops,
      call: (signal, choice, hooks) =>
        deps.engine.chat({ model: info.id, messages, tools, sampling: choiceSampling(stops ? { ...sampling, stop: undefined } : sampling, choice, n), signal, ...hooks, ...(thinking === false && { thinking }) }),
      full: (gs) => chatCompletion(id, info.id, created, gs, legacy),
      // A forced call has no text: content null, as the answer unstreamed says (the openai SDK's stream helpers build
      // their final message from these deltas: "" there, null unstreamed).
      head: (i) => chatChunk(id, info.id, created, { role: "assistant", content: forced ? null : "" }, null, i),
      piece: (text, i, lp) => chatChunk(id, info.id, created, { content: text }, null, i, chatLogprobs(lp)),
      thought: (text, i) => chatChunk(id, info.id, created, { reasoning_content: text, reasoning: text }, null, i),
      calls: (calls, i) => chatChunk(id, info.id, created, legacy ? functionCallDelta(calls) : toolCallsDelta(calls), null, i),
      end: (finish, _g, i) => chatChunk(id, info.id, created, {}, legacyFinish(finish, legacy), i),
      usage: (g) => usageChunk(id, "chat.completion.chunk", info.id, created, g),
    }) as Promise<Response>;
  }, {
    body: chatCompletionRequest,
    parse: "json", // documents the content type; the global parser in app.ts runs first
    detail: { summary: "Create a chat completion (streams with stream: true)", tags: ["OpenAI"] },
    response: { 200: chatCompletionObject, 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody, 503: errorBody },
  });
