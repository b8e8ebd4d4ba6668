/**
 * Token-id prompts for an upstream model, as text, so the prompt guard can read
 * them: the upstream's own `POST /detokenize` (llama-server's extension, also in
 * vLLM and this appliance) at the server's root (beside /v1), one call per
 * prompt, with the upstream's key and no redirects. An upstream without it →
 * 400 naming `prompt` (the client can send text, or the operator can set
 * gateway.tokenPrompts to "forward").
 */
import { InvalidRequestError } from "../errors";
import type { LeastInflight } from "./balancer";
import { errorCode, UpstreamError, UpstreamUnavailableError } from "./errors";
import type { UpstreamPool } from "./pool";
import type { Upstream } from "./upstream";

/** llama-server and this appliance answer {content}, vLLM {prompt}. */
const textOf = (v: unknown): string | undefined => {
  const o = (v ?? {}) as { content?: unknown; prompt?: unknown };
  return typeof o.content === "string" ? o.content : typeof o.prompt === "string" ? o.prompt : undefined;
};

/** The root URL of `POST /detokenize` for an upstream whose base is …/v1. */
export const detokenizeUrl = (u: Upstream) => u.base.replace(/\/v1$/, "") + "/detokenize";

export async function detokenizeUpstream(pool: UpstreamPool, balancer: LeastInflight, model: string, prompts: number[][],
  timeoutMs: number, signal: AbortSignal): Promise<string[]> {
  const u = balancer.pick(pool.candidates(model));
  if (!u) {
    const why = pool.unavailable(model, 0);
    throw new UpstreamUnavailableError(model, why.retryAfterS, why.why);
  }
  const one = async (tokens: number[]): Promise<string> => {
    let res: Response;
    try {
      res = await u.send(detokenizeUrl(u), {
        method: "POST", signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ model, tokens }),
      });
    } catch (e) {
      if (signal.aborted) throw e;
      throw new UpstreamError(`The upstream for '${model}' could not turn the token-id prompt into text: ${errorCode(e)}.`);
    }
    // A body that breaks off mid-read is the upstream's failure (502), not this server's (it was a 500; attack on the fix).
    const body = await res.text().catch((e: unknown) => {
      if (signal.aborted) throw e;
      throw new UpstreamError(`The upstream for '${model}' broke off its answer to POST /detokenize: ${errorCode(e)}.`);
    });
    if (res.status === 404 || res.status === 405 || res.status === 501) {
      throw new InvalidRequestError(`Token-id prompts for '${model}' cannot be checked: its upstream has no POST /detokenize (HTTP ${res.status}). ` +
        "Send the prompt as text.", "prompt", "unsupported_for_upstream");
    }
    if (res.status === 400) throw new InvalidRequestError(`The upstream refused the token ids in the prompt (not in its vocabulary?).`, "prompt", "invalid_token_ids");
    let text: string | undefined;
    try { text = textOf(JSON.parse(body)); } catch { /* below */ }
    if (res.status !== 200 || text === undefined) {
      throw new UpstreamError(`The upstream for '${model}' answered POST /detokenize with HTTP ${res.status}${res.status === 200 ? " but no text" : ""}.`);
    }
    return text;
  };
  return Promise.all(prompts.map(one));
}
