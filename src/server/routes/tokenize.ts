/**
 * POST /tokenize and POST /detokenize: llama-server's extension (not OpenAI's),
 * so clients can count tokens before they send. `model` may be left out when
 * the server has one model. Text is tokenized as user text: special-token
 * spellings stay text, exactly as the completion routes will read them. vLLM's
 * spellings are taken too (`prompt`, and `messages` rendered by the chat template).
 */
import { Elysia, t } from "elysia";
import { checkChars } from "../../guards/bounds";
import { InvalidRequestError, MissingParameterError, ModelNotFoundError } from "../../errors";
import { toToolUse, toTurns } from "../openai/convert";
import { detokenizeRequest, errorBody, tokenizeRequest, type ChatCompletionRequest, type TokenizeRequest } from "../openai/wire";
import { guardChat } from "./guard-chat";
import { stateOf } from "../request-state";
import type { AppDeps } from "../deps";

function modelFor(deps: AppDeps, request: Request, id: string | undefined): string {
  const models = deps.engine.models();
  // A gateway's upstream model is listed by /v1/models: say why it is not tokenized here, not that it does not exist.
  if (id !== undefined && !deps.engine.model(id) && deps.gateway?.serves(id)) {
    throw new InvalidRequestError(`The model '${id}' is served by an upstream: /tokenize and /detokenize work with this server's local models only.`, "model", "unsupported_for_upstream");
  }
  if (id === undefined && models.length !== 1) {
    throw new InvalidRequestError(models.length ? "This server has several models: name one in 'model'." : "This server has no local model to tokenize with (its models are upstream ones).", "model");
  }
  const info = id === undefined ? models[0]! : deps.engine.model(id);
  if (!info) throw new ModelNotFoundError(id!);
  stateOf(request).model = info.id;
  return info.id;
}

const CHAT_ONLY = ["tools", "add_generation_prompt", "continue_final_message", "return_token_strs"] as const;

/**
 * vLLM's chat form of /tokenize: the messages as the chat route reads them (the same conversion and prompt guard),
 * rendered by the model's chat template with its generation prompt, answered in vLLM's shape.
 */
async function chatTokens(deps: AppDeps, request: Request, model: string, body: TokenizeRequest) {
  for (const k of ["content", "prompt", "add_special", "with_pieces"] as const) {
    if (body[k] !== undefined) throw new InvalidRequestError(`'${k}' is for text; with 'messages' the chat template places the special tokens.`, k);
  }
  // vLLM's default for the chat form is false: the template writes its own BOS; true would add a second one.
  if (body.add_special_tokens) throw new InvalidRequestError("With 'messages' the chat template places the special tokens: only add_special_tokens false.", "add_special_tokens");
  const req = { messages: body.messages!, tools: body.tools };
  const specials = deps.engine.specialTokens(model);
  const use = toToolUse(req as ChatCompletionRequest, specials);
  const { messages, tools } = guardChat(deps, stateOf(request), model, toTurns(req as ChatCompletionRequest, deps.config.limits), use);
  checkChars("messages", messages.reduce((n, m) => n + m.content.length, 0), deps.config.maxPromptChars, "messages", "input_too_long");
  const tokens = await deps.engine.chatTokens(model, messages, tools?.tools);
  return {
    count: tokens.length, max_model_len: deps.engine.model(model)!.contextSize, tokens,
    ...(body.return_token_strs && { token_strs: tokens.map((id, i) => deps.engine.detokenize(model, [id], "tokens", tokens.slice(Math.max(0, i - 8), i))) }),
  };
}

export const tokenizeRoutes = (deps: AppDeps) =>
  new Elysia({ name: "routes.tokenize" })
    .post("/tokenize", async ({ body, request }) => {
      const model = modelFor(deps, request, body.model);
      if (body.messages !== undefined) return chatTokens(deps, request, model, body);
      for (const k of CHAT_ONLY) if (body[k] !== undefined) throw new InvalidRequestError(`'${k}' goes with 'messages' (vLLM's chat form).`, k);
      const vllm = body.prompt !== undefined; // vLLM's spelling, answered in vLLM's shape (count, max_model_len)
      if (vllm && body.content !== undefined) throw new InvalidRequestError("Give the text as 'content' or as 'prompt', not both.", "prompt");
      const text = body.content ?? body.prompt;
      if (text === undefined) throw new MissingParameterError("content");
      // The prompts' bound: a text no prompt may be is not tokenized either (its cost grows with its length, long-text.ts).
      checkChars("content", text.length, deps.config.maxPromptChars, vllm ? "prompt" : "content", "input_too_long");
      // Each spelling's own default: llama-server's add_special false, vLLM's add_special_tokens true.
      const tokens = deps.engine.tokenize(model, text, body.add_special ?? body.add_special_tokens ?? vllm);
      if (vllm && !body.with_pieces) return { count: tokens.length, max_model_len: deps.engine.model(model)!.contextSize, tokens };
      if (!body.with_pieces) return { tokens };
      // A piece that is part of a UTF-8 character is its bytes, as llama-server gives it (its text alone reads "\uFFFD").
      return { tokens: tokens.map((id, i) => ({ id, piece: deps.engine.partialBytes?.(model, id) ?? deps.engine.detokenize(model, [id], "tokens", tokens.slice(Math.max(0, i - 8), i)) })) };
    }, {
      body: tokenizeRequest,
      parse: "json",
      detail: { summary: "Text → token ids (llama-server extension)", tags: ["Extensions"] },
      response: {
        200: t.Object({ tokens: t.Union([t.Array(t.Number()), t.Array(t.Object({ id: t.Number(), piece: t.Union([t.String(), t.Array(t.Number())]) }))]),
          count: t.Optional(t.Number()), max_model_len: t.Optional(t.Number()), token_strs: t.Optional(t.Array(t.String())) }),
        400: errorBody, 401: errorBody, 404: errorBody,
      },
    })
    .post("/detokenize", ({ body, request }) => ({ content: deps.engine.detokenize(modelFor(deps, request, body.model), body.tokens) }), {
      body: detokenizeRequest,
      parse: "json",
      detail: { summary: "Token ids → text (llama-server extension)", tags: ["Extensions"] },
      response: { 200: t.Object({ content: t.String() }), 400: errorBody, 401: errorBody, 404: errorBody },
    });
