/**
 * Streamed generations: one SSE stream for every choice of a request. Choices run one after another
 * (each admitted like a request of its own, as without streaming, so one request never holds several
 * slots); every chunk carries its choice's index, and one [DONE] ends the stream. Each choice has its
 * own response filter, so a secret held back at the end of one choice cannot run into the next.
 * The 200 and its event-stream headers go out only once the first choice is admitted (grammar built,
 * context checked, a place in the queue), so those refusals keep their status.
 */
import { CancelledError, AppError } from "../../errors";
import type { Generation, GenerationStage } from "../../engine/engine";
import { errorBodyOf, toAppError } from "../errors";
import { LogprobAligner, type AlignedPiece } from "../openai/logprob-align";
import { sseResponse } from "../openai/sse";
import { cacheScopeOf, type RequestState } from "../request-state";
import type { AppDeps } from "../deps";
import type { Flight } from "../inflight";
import { scanParts } from "../../guards/scan-parts";
import { thoughtStream } from "../thought-stream";
import { argumentsOf, scanned, unstarted, type GenerationPlan } from "./generate";
import { totalUsage } from "../openai/convert";
import { stopPieces } from "../../engine/stop-text";

/** Sends one event, or each of an array of them. */
const sendAll = (send: (event: unknown) => void, events: unknown) => {
  for (const e of Array.isArray(events) ? events : [events]) send(e);
};

const nullUsage = (e: unknown) =>
  e && typeof e === "object" && "choices" in e && !("usage" in e) ? { ...e, usage: null } : e;

export async function streamGeneration(state: RequestState, deps: AppDeps, plan: GenerationPlan, flight: Flight,
  onStage: (stage: GenerationStage) => void): Promise<Response> {
  const keepText = deps.config.logPrompts;
  const texts: string[] = [];
  let emit: ((event: unknown) => void) | undefined;
  const early: unknown[] = [];
  // With include_usage every chunk before the usage chunk says `usage: null`, as OpenAI documents.
  const fix = plan.includeUsage ? nullUsage : (e: unknown) => e;
  const out = (events: unknown) => (emit ? sendAll((e) => emit!(fix(e)), events) : early.push(events));

  /** Starts choice i: its engine call, filter and (with logprobs) the aligner that keeps tokens with the text sent. */
  const startChoice = (i: number) => {
    const filter = deps.responseFilter(state, true, !!plan.jsonText);
    // The engine stops on client disconnect (flight) or on a blocking finding.
    const stop = new AbortController();
    const stopEngine = () => stop.abort(new Error("stopped"));
    if (flight.signal.aborted) stopEngine();
    else flight.signal.addEventListener("abort", stopEngine, { once: true });
    const aligner = plan.logprobs ? new LogprobAligner() : undefined;
    let raw = ""; // generated text the filter still holds back
    texts[i] = "";
    const emitText = (text: string, logprobs: AlignedPiece["logprobs"] | undefined) => {
      out(plan.piece(text, i, logprobs));
      if (keepText) texts[i] += text;
    };
    // The request's stop strings, where the server applies them: to the text as the filter releases it (stop-after-scan.ts).
    const cut = plan.stop && stopPieces(plan.stop, (p) => emitText(p.text, p.logprobs), () => stopEngine());
    const send = (text: string, logprobs: AlignedPiece["logprobs"] | undefined) => (cut ? cut.push({ text, logprobs }) : emitText(text, logprobs));
    const sendPieces = (pieces: AlignedPiece[]) => { for (const p of pieces) send(p.text, p.logprobs); };
    let headSent = !plan.head;
    const sendHead = (prompt?: Parameters<NonNullable<GenerationPlan["head"]>>[1]) => {
      if (!headSent) { headSent = true; out(plan.head!(i, prompt)); }
    };
    if (!plan.headAfterPrompt) sendHead();
    // A reasoning model's thought: a filter of its own, emptied when the answer starts (thought-stream.ts).
    const thought = thoughtStream(() => deps.responseFilter(state, true), (text) => out(plan.thought!(text, i)));
    let admitted!: () => void;
    const admission = new Promise<void>((resolve) => { admitted = resolve; });
    // A choice after a cancel is not handed to the engine: it settles as cancelled (a shutdown then ends it unstarted).
    const generation = flight.signal.aborted ? Promise.reject(new CancelledError()) : plan.call(stop.signal, i, {
      onStage, cacheScope: cacheScopeOf(state),
      onAdmitted: () => admitted(),
      onLogprob: aligner && ((t) => aligner.token(t)),
      onPromptLogprobs: plan.headAfterPrompt ? (p) => sendHead(p) : undefined,
      onReasoning: plan.thought && ((text) => {
        sendHead();
        thought.push(text);
        if (thought.blocked) stopEngine();
      }),
      onText: (text) => {
        sendHead();
        thought.end();
        const piece = filter.push(text);
        if (aligner) {
          raw += text;
          const consumed = raw.length - filter.pending;
          if (!filter.blocked) sendPieces(aligner.push(raw.slice(0, consumed), piece));
          raw = raw.slice(consumed);
        } else if (piece) send(piece, undefined);
        if (filter.blocked) stopEngine();
      },
    });
    /** The rest of the choice once generated: held-back text, calls, the finish event. */
    const finish = (g: Generation) => {
      const tail = filter.end(), args = scanParts(argumentsOf(g), () => deps.responseFilter(state, false, true));
      sendHead();
      thought.end();
      const blocked = filter.blocked || args.blocked || thought.blocked;
      scanned(g, [tail, ...args.parts], blocked);
      if (aligner && !blocked) sendPieces(aligner.push(raw, g.text, true));
      // The filter found a secret only now (in text it held, or batched as a burst: a fast model's tokens come less
      // than 1 ms apart): the clean text before it still goes out, as it does when a push finds one (and as the
      // gateway's relay sends it); the stream then stops at the secret. It was dropped, so what a blocked stream
      // carried before the key depended on the tokens' timing. (With logprobs a blocked push sends nothing: as before.)
      else if (!aligner && filter.blocked && !thought.blocked) { if (tail) send(tail, undefined); }
      else if (g.text) send(g.text, undefined);
      cut?.finish();
      if (cut?.stopped && !blocked) { g.finishReason = "stop"; g.toolCalls = undefined; }
      if (g.toolCalls?.length && plan.calls) out(plan.calls(g.toolCalls, i));
      out(plan.end(g.finishReason, g, i));
    };
    return { admission, generation, finish };
  };

  const first = startChoice(0);
  try {
    await Promise.race([first.admission, first.generation]);
  } catch (e) {
    flight.end();
    if (flight.signal.aborted && flight.cut()) throw flight.cut()!(); // before any byte: a 503 (shutdown: one the SDKs retry)
    throw flight.signal.aborted && !(e instanceof AppError) ? new CancelledError() : e;
  }

  state.deferredFinish = true;
  return sseResponse({
    headers: { "x-request-id": state.id, ...state.headers },
    named: plan.named,
    maxBacklog: deps.config.limits.streamBacklogBytes,
    onLastEvent: () => state.idleAgain?.(),
    run: async (rawSend) => {
      for (const events of early.splice(0)) sendAll((e) => rawSend(fix(e)), events);
      emit = rawSend;
      // Cancelled by a shutdown (grace period over) rather than by the client: the client is still there,
      // so the stream ends properly, with what was generated, finish_reason "length" (cut short) and [DONE].
      const byShutdown = () => flight.signal.aborted && flight.cut() !== undefined; // or a lockdown
      const gs: Generation[] = [];
      for (let i = 0, choice = first; ; choice = startChoice(i)) {
        const g: Generation = await choice.generation.catch((e: unknown): Generation => {
          if (!byShutdown()) throw e;
          // The first choice never started (it waited in the queue): an error event, not an empty answer the client
          // cannot tell from a real one (resilience run); a later one: the answer so far, cut short.
          if (i === 0) throw flight.cut()!();
          return unstarted();
        });
        gs.push(g);
        Object.assign(state, totalUsage(gs, plan.perPrompt)); // promptTokens, cachedTokens, completionTokens
        if (byShutdown()) {
          g.finishReason = "length";
          g.toolCalls = undefined;
          state.status = 499; // logged and audited as cancelled; the client sees a complete, truncated answer
        } else if (flight.signal.aborted) throw new CancelledError();
        choice.finish(g);
        // A shutdown's cut still ends every choice (each unstarted one empty, finish_reason "length"), as the
        // non-streamed answer keeps n choices: the stream had only index 0 (load run).
        if (++i >= plan.choices || (flight.signal.aborted && !byShutdown())) break;
      }
      state.marks.done ??= performance.now();
      deps.settle(state);
      if (keepText) state.responseText = texts.join("\n");
      if (plan.includeUsage) out(plan.usage(totalUsage(gs, plan.perPrompt)));
    },
    onCancel: () => flight.abort(),
    errorEvent: (err) => {
      if (flight.signal.aborted && !flight.cut()) return undefined;
      const e = toAppError("UNKNOWN", err, state.id, deps.log);
      state.status = e.status;
      state.errorCode = e.code ?? undefined;
      return errorBodyOf(e);
    },
    onFinish: (err) => {
      flight.end();
      state.status ??= err && flight.signal.aborted ? 499 : 200;
      if (state.status === 499) state.errorCode = "cancelled";
      deps.finish(state);
    },
  });
}
