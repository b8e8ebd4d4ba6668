/** POST /v1/completions (legacy text completions) */
import { Elysia } from "elysia";
import { choiceCount, choiceSampling, includeUsage, prompts, textChunk, textCompletion, toSampling, usageChunk } from "../openai/convert";
import { promptSpelled, textLogprobs } from "../openai/logprob-wire";
import { completionRequest, errorBody, textCompletionObject } from "../openai/wire";
import type { AppDeps } from "../deps";
import { prologue } from "./prologue";
import { runGeneration } from "./generate";
import { stopsAfterScan } from "../stop-after-scan";
import { InvalidRequestError } from "../../errors";

export const completionRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.completions" }).post("/v1/completions", async ({ body, request }) => {
    const p = prologue(deps, request, "completions", body);
    if (p.forwarded) return p.forwarded;
    const { state, info } = p;
    if (body.max_tokens === 0 && !body.echo) {
      throw new InvalidRequestError("max_tokens 0 generates nothing: it is taken with echo: true (the prompt, with its logprobs when asked).", "max_tokens", "integer_below_min_value");
    }
    const sampling = toSampling(body, deps.config, info.contextSize, deps.engine.specialTokens(info.id));
    // Token-id prompts are guarded as the text they spell; if the guard changes that text, the text is used instead.
    // One that begins with the BOS token (as lm-evaluation-harness and other tokenizing clients send it) is taken as
    // given: the engine puts that token first anyway (it had been refused as a control token, or doubled).
    // The engine is given the ids as sent (it lists the BOS in echoed logprobs); the guard reads the text after it.
    const bos = info.beginningToken;
    const given = prompts(body);
    const texts = given.map((p) => (typeof p === "string" ? p : deps.engine.detokenize(info.id, bos !== undefined && p[0] === bos ? p.slice(1) : p, "prompt")));
    const guarded = deps.promptGuard(state, info.id, texts.map((content) => ({ role: "user" as const, content })), undefined, "prompt").map((t) => t.content);
    const inputs = given.map((p, i) => (typeof p !== "string" && guarded[i] === texts[i] ? p : guarded[i]!));
    if (deps.config.logPrompts) state.promptText = guarded.join("\n");
    const n = body.n ?? 1;
    const stream = body.stream ?? false;
    const echo = body.echo ? guarded : undefined;
    const id = "cmpl-" + state.id.slice(4);
    const created = Math.floor(deps.clock() / 1000);
    const offsets: number[] = []; // per choice, where the next streamed text starts (text_offset)
    const stops = stopsAfterScan(deps.config, sampling.stop); // looked for in the text as sent (stop-after-scan.ts)
    // The 200 schema documents the answer; the converters build it (typed as the Response a stream is).
    return runGeneration(request, state, deps, {
      stream,
      includeUsage: includeUsage(body),
      choices: choiceCount(n, inputs.length),
      perPrompt: n,
      logprobs: sampling.logprobs != null,
      jsonText: !!sampling.format,
      stop: stops,
      call: (signal, choice, hooks) => deps.engine.complete({
        model: info.id, prompt: inputs[Math.floor(choice / n)]!, sampling: choiceSampling(stops ? { ...sampling, stop: undefined } : sampling, choice, n), signal, ...hooks,
      }),
      full: (gs) => textCompletion(id, info.id, created, gs, n, echo && gs.map((_, i) => echo[Math.floor(i / n)]!)),
      headAfterPrompt: !!echo && sampling.promptLogprobs,
      head: echo && ((i, prompt) => {
        const text = echo[Math.floor(i / n)]!;
        offsets[i] = text.length;
        const spelt = promptSpelled(prompt, text);
        const lp = spelt ? textLogprobs(spelt) : null;
        return textChunk(id, info.id, created, text, null, i, lp);
      }),
      piece: (text, i, lp) => {
        const from = offsets[i] ?? 0;
        offsets[i] = from + text.length;
        return textChunk(id, info.id, created, text, null, i, lp ? textLogprobs(lp, from) : null);
      },
      end: (finish, _g, i) => textChunk(id, info.id, created, "", finish, i),
      usage: (g) => usageChunk(id, "text_completion", info.id, created, g),
    }) as Promise<Response>;
  }, {
    body: completionRequest,
    parse: "json", // documents the content type; the global parser in app.ts runs first
    detail: { summary: "Create a text completion (streams with stream: true)", tags: ["OpenAI"] },
    response: { 200: textCompletionObject, 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody, 503: errorBody },
  });
