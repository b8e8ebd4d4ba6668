/**
 * The shared shape of chat and text completions: run the engine once per choice, either
 * as one JSON answer or as an SSE stream, passing generated text through the
 * response filter (secret scanner) and recording token counts for log and audit.
 * A "block" finding stops generation and ends it with finish_reason
 * "content_filter", as OpenAI does.
 */
import { AppError, CancelledError } from "../../errors";
import type { Generation, GenerateCall, GenerationStage, PromptLogprob, TokenLogprob, ToolCall } from "../../engine/engine";
import { alignWhole } from "../openai/logprob-align";
import { totalUsage, type UsageCounts } from "../openai/convert";
import type { TextFilter } from "../../guards/response-scan";
import { scanParts } from "../../guards/scan-parts";
import { cacheScopeOf, type RequestState } from "../request-state";
import type { AppDeps } from "../deps";
import { streamGeneration } from "./generate-stream";
import { arrived } from "../arrivals";
import { firstStop, logprobsBefore, stopPieces } from "../../engine/stop-text";

/** What the engine call of one choice is handed: all set when streaming, `onStage` always. */
export type CallHooks = Pick<GenerateCall, "onText" | "onReasoning" | "onAdmitted" | "onLogprob" | "onPromptLogprobs" | "onStage" | "cacheScope">;

export interface GenerationPlan {
  stream: boolean;
  includeUsage: boolean;
  /** Generations in the answer (n, times the prompts of a completions request); streamed one after another. */
  choices: number;
  /** Choices that share one prompt (n): the prompt is counted once per group in usage. */
  perPrompt: number;
  /** Logprobs were asked for: streamed text goes out with the tokens that spell it. */
  logprobs?: boolean;
  /** The answer's text is JSON (a response_format): the response scanner reads it as such (a call's arguments always are). */
  jsonText?: boolean;
  /**
   * The request's stop strings where the server applies them to the text as sent (server/stop-after-scan.ts); `call`
   * then hands the engine none.
   */
  stop?: readonly string[];
  /** Runs the engine for one choice. */
  call: (signal: AbortSignal, choice: number, hooks: CallHooks) => Promise<Generation>;
  /** The whole non-streaming answer. */
  full: (g: Generation[]) => unknown;
  /** Stream events; a hook may return several events as an array. A choice starts with `head`. */
  head?: (choice: number, prompt?: PromptLogprob[]) => unknown;
  /** `head` waits for the prompt's logprobs (completions echo with logprobs). */
  headAfterPrompt?: boolean;
  /** `logprobs`: undefined when not asked for, null when they could not be lined up with the text. */
  piece: (text: string, choice: number, logprobs: TokenLogprob[] | null | undefined) => unknown;
  /** A piece of a reasoning model's thought (chat); without it the thought is not streamed. */
  thought?: (text: string, choice: number) => unknown;
  /** The calls the model made, as one stream event (chat only). */
  calls?: (calls: ToolCall[], choice: number) => unknown;
  end: (finish: string, g: Generation, choice: number) => unknown;
  usage: (g: UsageCounts) => unknown;
  /** The Responses API's stream dialect (named events, no [DONE]). */
  named?: boolean;
}

export async function runGeneration(request: Request, state: RequestState, deps: AppDeps, plan: GenerationPlan): Promise<unknown> {
  const flight = deps.inflight.begin(request.signal);
  // The first time each stage is reached (several choices run one after another): queue wait, prompt eval, first token.
  const onStage = (stage: GenerationStage) => {
    if (stage === "admitted") arrived(request); // in the engine's queue now (a burst's first decode waited for it)
    state.marks[stage] ??= performance.now();
  };
  if (plan.stream) return streamGeneration(state, deps, plan, flight, onStage);
  // Cut by the server (a shutdown's grace period over, a lockdown), not by the client, who is still there (resilience
  // run: a bodyless 499).
  const byShutdown = () => flight.signal.aborted && flight.cut() !== undefined;
  try {
    // Choices run one after another: each is admitted like any request, and one request never holds several slots.
    const gs: Generation[] = [];
    // A choice the shutdown cut or never let start: what it has with finish_reason "length", so the answer still has
    // n choices and those that finished keep theirs (calls too), as a stream ends then (fix-attack run).
    for (let i = 0; i < plan.choices; i++) {
      if (flight.signal.aborted) {
        if (!byShutdown()) break;
        if (!gs.length) throw flight.cut()!();
        gs.push(unstarted());
        continue;
      }
      // Every choice's text reads as an answer, as streamed choices do (the index is the choice's, not scanChoices' part's).
      const watch = plan.stop && stopWatch(plan.stop, flight.signal, deps.responseFilter(state, true, !!plan.jsonText));
      const g = await plan.call(watch ? watch.signal : flight.signal, i, { onStage, cacheScope: cacheScopeOf(state), ...(watch && { onText: watch.onText }) }).catch((e: unknown) => {
        if (!byShutdown()) throw e;
        if (!gs.length) throw flight.cut()!(); // nothing was generated: a 503 (shutdown: one the SDKs retry)
        return unstarted();
      });
      if (byShutdown()) { g.finishReason = "length"; g.toolCalls = undefined; } // aborted while it ran: cut short
      gs.push(g);
    }
    Object.assign(state, totalUsage(gs, plan.perPrompt)); // promptTokens, cachedTokens, completionTokens
    state.marks.done ??= performance.now();
    deps.settle(state);
    if (byShutdown()) state.status = 499; // logged and audited as cancelled; the client gets its answer
    else if (flight.signal.aborted) throw new CancelledError();
    scanChoices(gs, (i) => deps.responseFilter(state, i === 0, i === 0 ? !!plan.jsonText : true), () => deps.responseFilter(state, true)); // part 0: the text, then arguments
    if (plan.stop) for (const g of gs) cutAtStop(g, plan.stop);
    if (deps.config.logPrompts) state.responseText = gs.map((g) => g.text).join("\n");
    return plan.full(gs);
  } catch (e) {
    throw flight.signal.aborted && !(e instanceof AppError) ? new CancelledError() : e;
  } finally {
    flight.end();
  }
}

/**
 * Watches a non-streamed choice's text as the response filter releases it (a filter of its own; the answer is scanned
 * whole afterwards) and ends the generation at the first stop string in it; `signal` is the engine call's.
 */
function stopWatch(stops: readonly string[], client: AbortSignal, filter: TextFilter) {
  const end = new AbortController();
  const onClient = () => end.abort(client.reason);
  if (client.aborted) onClient();
  else client.addEventListener("abort", onClient, { once: true });
  const cut = stopPieces(stops, () => {}, () => end.abort(new Error("stop string")));
  return { signal: end.signal, onText: (text: string) => cut.push({ text: filter.push(text) }) };
}

/** A scanned choice cut before the first stop string in its text as sent (its logprobs too); finish_reason "stop". */
function cutAtStop(g: Generation, stops: readonly string[]) {
  const at = g.finishReason === "content_filter" ? -1 : firstStop(g.text, stops);
  if (at < 0) return;
  g.text = g.text.slice(0, at);
  if (g.logprobs) g.logprobs = logprobsBefore(g.logprobs, at);
  g.toolCalls = undefined;
  g.finishReason = "stop";
}

/** A choice a shutdown cancelled before it generated anything: empty, cut short (streamed or not). */
export const unstarted = (): Generation => ({ text: "", promptTokens: 0, completionTokens: 0, finishReason: "length" });

/** A choice's tool-call arguments: generated text too, each scanned on its own (guards/scan-parts.ts). */
export const argumentsOf = (g: Generation) => (g.toolCalls ?? []).map((c) => c.arguments);

/**
 * Every choice's text and arguments through response filters of its own (`newFilter`), as streamed choices
 * have: through one filter, a match could run from one choice into the next and blank them all.
 */
function scanChoices(gs: Generation[], newFilter: (index: number) => TextFilter, thoughtFilter: () => TextFilter) {
  for (const g of gs) {
    const raw = g.text;
    const { parts, blocked } = scanParts([g.text, ...argumentsOf(g)], newFilter);
    const thought = g.reasoning ? scanParts([g.reasoning], thoughtFilter) : undefined;
    scanned(g, parts, blocked || !!thought?.blocked, thought?.parts[0]);
    // The logprobs of the text as sent: a redacted stretch is one entry spelling the redaction.
    if (g.logprobs) g.logprobs = alignWhole(g.logprobs, raw, g.text) ?? undefined;
  }
}

/**
 * Puts the filtered text and arguments (`[text, ...arguments]`) and thought back on `g`; a block empties the text
 * and drops the thought and the calls.
 */
export function scanned(g: Generation, [text, ...args]: readonly string[], blocked: boolean, thought?: string) {
  g.text = blocked ? "" : text!;
  if (blocked || !thought) delete g.reasoning;
  else g.reasoning = thought;
  if (blocked) {
    g.toolCalls = undefined;
    g.finishReason = "content_filter";
    return;
  }
  if (g.toolCalls?.length) g.toolCalls = g.toolCalls.map((c, i) => ({ ...c, arguments: args[i]! }));
}
