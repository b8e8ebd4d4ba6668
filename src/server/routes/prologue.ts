/**
 * The one prologue of the model routes (chat, completions, responses, embeddings): the request's
 * state, then the upstream that serves the named model (gateway mode) or the local model, and a 404
 * naming the model when neither does. Each route then speaks only about its own fields. A request for an upstream
 * model is withdrawn from burst gathering here (it was announced at onRequest, before its model was known).
 */
import { ModelNotFoundError } from "../../errors";
import type { ModelInfo } from "../../engine/engine";
import { arrived } from "../arrivals";
import type { AppDeps } from "../deps";
import { stateOf, type RequestState } from "../request-state";
import { forwardUpstream } from "../upstream/forward";
import type { UpstreamRoute } from "../upstream/guard-body";

export type Prologue =
  | { state: RequestState; info: ModelInfo; forwarded?: undefined }
  | { state: RequestState; info?: undefined; forwarded: Promise<Response> };

export function prologue(deps: AppDeps, request: Request, route: UpstreamRoute, body: Parameters<typeof forwardUpstream>[4]): Prologue {
  const state = stateOf(request);
  if (deps.gateway?.serves(body.model)) {
    // Not on its way to the local engine after all: an idle local start must not wait for it (arrivals.ts).
    arrived(request);
    return { state, forwarded: forwardUpstream(deps, request, state, route, body) };
  }
  const info = deps.engine.model(body.model);
  if (!info) throw new ModelNotFoundError(body.model);
  state.model = info.id;
  return { state, info };
}
