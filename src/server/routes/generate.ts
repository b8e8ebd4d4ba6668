/**
 * The shared shape of chat and text completions: run the engine once, either
 * as one JSON answer or as an SSE stream, passing generated text through the
 * response filter (secret scanner) and recording token counts for log and audit.
 * A "block" finding stops generation and ends it with finish_reason
 * "content_filter", as OpenAI does.
 */
import { AppError, CancelledError } from "../../errors";
import type { Generation, ToolCall } from "../../engine/engine";
import { toAppError } from "../errors";
import { sseResponse } from "../openai/sse";
import type { TextFilter } from "../../guards/response-scan";
import type { RequestState } from "../request-state";
import type { AppDeps } from "../deps";

export interface GenerationPlan {
  stream: boolean;
  includeUsage: boolean;
  /** Generations in the answer (n, times the prompts of a completions request); more than one is never streamed. */
  choices: number;
  /** Choices that share one prompt (n): the prompt is counted once per group in usage. */
  perPrompt: number;
  /** Runs the engine for one choice; `onText` and `onAdmitted` are set when streaming. */
  call: (signal: AbortSignal, choice: number, onText?: (text: string) => void, onAdmitted?: () => void) => Promise<Generation>;
  /** The whole non-streaming answer. */
  full: (g: Generation[]) => unknown;
  /** Stream events; a hook may return several events as an array. */
  head?: () => unknown;
  piece: (text: string) => unknown;
  /** The calls the model made, as one stream event (chat only). */
  calls?: (calls: ToolCall[]) => unknown;
  end: (finish: string, g: Generation) => unknown;
  usage: (g: Pick<Generation, "promptTokens" | "completionTokens">) => unknown;
  /** The Responses API's stream dialect (named events, no [DONE]). */
  named?: boolean;
}

/** Sends one event, or each of an array of them. */
const sendAll = (send: (event: unknown) => void, events: unknown) => {
  for (const e of Array.isArray(events) ? events : [events]) send(e);
};

export async function runGeneration(request: Request, state: RequestState, deps: AppDeps, plan: GenerationPlan): Promise<unknown> {
  const flight = deps.inflight.begin(request.signal);
  const filter = deps.responseFilter(state);
  const keepText = deps.config.logPrompts;
  let streamed = "";
  const record = (g: Pick<Generation, "promptTokens" | "completionTokens">) => {
    state.promptTokens = g.promptTokens; state.completionTokens = g.completionTokens;
    deps.settle(state);
  };

  if (!plan.stream) {
    try {
      // Choices run one after another: each is admitted like any request, and one request never holds several slots.
      const gs: Generation[] = [];
      for (let i = 0; i < plan.choices && !flight.signal.aborted; i++) gs.push(await plan.call(flight.signal, i));
      record({
        promptTokens: gs.reduce((n, g, i) => n + (i % plan.perPrompt === 0 ? g.promptTokens : 0), 0),
        completionTokens: gs.reduce((n, g) => n + g.completionTokens, 0),
      });
      if (flight.signal.aborted) throw new CancelledError();
      scanChoices(gs, filter);
      if (keepText) state.responseText = gs.map((g) => g.text).join("\n");
      return plan.full(gs);
    } catch (e) {
      throw flight.signal.aborted && !(e instanceof AppError) ? new CancelledError() : e;
    } finally {
      flight.end();
    }
  }

  // The engine stops on client disconnect (flight) or on a blocking finding.
  const engineStop = new AbortController();
  const stopEngine = () => engineStop.abort(new Error("stopped"));
  flight.signal.addEventListener("abort", stopEngine, { once: true });

  // Start the engine now; the 200 and its event-stream headers go out only once it has admitted the
  // request (grammar built, context checked, a place in the queue), so those refusals keep their status.
  let emit: ((event: unknown) => void) | undefined;
  const early: unknown[] = [];
  const out = (event: unknown) => (emit ? emit(event) : early.push(event));
  let admitted!: () => void;
  const admission = new Promise<void>((resolve) => { admitted = resolve; });
  const generation = plan.call(engineStop.signal, 0, (text) => {
    const piece = filter.push(text);
    if (piece) out(plan.piece(piece));
    if (keepText) streamed += piece;
    if (filter.blocked) stopEngine();
  }, () => admitted());
  try {
    await Promise.race([admission, generation]);
  } catch (e) {
    flight.end();
    throw flight.signal.aborted && !(e instanceof AppError) ? new CancelledError() : e;
  }

  state.deferredFinish = true;
  return sseResponse({
    headers: { "x-request-id": state.id, ...state.headers },
    named: plan.named,
    run: async (raw) => {
      const send = (events: unknown) => sendAll(raw, events);
      if (plan.head) send(plan.head());
      for (const event of early.splice(0)) send(event);
      emit = send;
      // Cancelled by a shutdown (grace period over) rather than by the client: the client is still there,
      // so the stream ends properly, with what was generated, finish_reason "length" (cut short) and [DONE].
      const byShutdown = () => flight.signal.aborted && deps.draining;
      const g: Generation = await generation.catch((e: unknown): Generation => {
        if (!byShutdown()) throw e;
        return { text: "", promptTokens: 0, completionTokens: 0, finishReason: "length" };
      });
      record(g);
      if (byShutdown()) {
        g.finishReason = "length";
        g.toolCalls = undefined;
        state.status = 499; // logged and audited as cancelled; the client sees a complete, truncated answer
      } else if (flight.signal.aborted) throw new CancelledError();
      scanned(g, filter.push(argumentsText(g)) + filter.end(), filter.blocked);
      if (g.text) send(plan.piece(g.text));
      if (keepText) state.responseText = streamed + g.text;
      if (g.toolCalls?.length && plan.calls) send(plan.calls(g.toolCalls));
      send(plan.end(g.finishReason, g));
      if (plan.includeUsage) send(plan.usage(g));
    },
    onCancel: () => flight.abort(),
    errorEvent: (err) => {
      if (flight.signal.aborted) return undefined;
      const e = toAppError("UNKNOWN", err, state.id, deps.log);
      state.status = e.status;
      state.errorCode = e.code ?? undefined;
      return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
    },
    onFinish: (err) => {
      flight.end();
      state.status ??= err && flight.signal.aborted ? 499 : 200;
      if (state.status === 499) state.errorCode = "cancelled";
      deps.finish(state);
    },
  });
}

/**
 * Tool-call arguments are generated text too: they go through the same response filter, after the
 * text, each behind a separator no rule matches, and come back apart.
 */
const SEPARATOR = "\u0000\u241Ftool-arguments\u241F\u0000";
const CHOICE_SEPARATOR = "\u0000\u241Fchoice\u241F\u0000";
const argumentsText = (g: Generation) => (g.toolCalls ?? []).map((c) => SEPARATOR + c.arguments).join("");

/** Every choice's text and arguments through the one response filter, apart again after. */
function scanChoices(gs: Generation[], filter: TextFilter) {
  const filtered = gs.map((g, i) => (i ? filter.push(CHOICE_SEPARATOR) : "") + filter.push(g.text) + filter.push(argumentsText(g))).join("") + filter.end();
  const parts = filtered.split(CHOICE_SEPARATOR);
  const lost = parts.length !== gs.length;
  gs.forEach((g, i) => scanned(g, lost ? "" : parts[i]!, filter.blocked || lost));
}

/** Puts the filtered text and arguments back on `g`; a block (or a split a held-back secret swallowed) drops the calls. */
function scanned(g: Generation, filtered: string, blocked: boolean) {
  const [text, ...args] = filtered.split(SEPARATOR);
  g.text = blocked ? "" : text!;
  if (!g.toolCalls?.length) {
    if (blocked) g.finishReason = "content_filter";
    return;
  }
  if (blocked || args.length !== g.toolCalls.length) {
    g.toolCalls = undefined;
    g.finishReason = "content_filter";
    return;
  }
  g.toolCalls = g.toolCalls.map((c, i) => ({ ...c, arguments: args[i]! }));
}
