/**
 * An upstream's chat/completions SSE stream, relayed to the client through the
 * response scanner: every choice has its own response filter (a secret held
 * back at the end of one choice cannot run into the next); text deltas pass it
 * as they arrive (the filter holds back what might be the start of a secret),
 * tool-call argument deltas are gathered and sent once the choice finishes,
 * after the scan (as local streams do), and a "block" finding ends that choice
 * with finish_reason "content_filter" (the upstream is stopped once every
 * choice is over). An upstream that dies mid-stream ends the client's stream
 * with an OpenAI error event (the SDKs raise it); usage is taken for limits and
 * audit, and passed on only when the client asked for it. relay-wire.ts writes
 * what passes in the client's dialect (chat, completions, or Responses events).
 */
import type { FinishReason, ToolCall } from "../../engine/engine";
import { CancelledError } from "../../errors";
import type { UpstreamReply } from "../../gateway/gateway";
import { UpstreamError } from "../../gateway/errors";
import { thoughtStream } from "../thought-stream";
import type { TextFilter } from "../../guards/response-scan";
import type { AppDeps } from "../deps";
import type { Flight } from "../inflight";
import { errorBodyOf, toAppError } from "../errors";
import type { ResponseFrame } from "../openai/responses";
import { sseResponse } from "../openai/sse";
import type { RequestState } from "../request-state";
import { chatWire, responsesWire, type RelayWire } from "./relay-wire";
import { ANSWER_MAX_DEPTH, scanStreamEnd, usageCounts } from "./scan-reply";
import { checkJsonShape } from "../../guards/json-shape";
import { isObject } from "../../util/is-object";
import { sseData } from "./sse-events";

type Obj = Record<string, unknown>;

export interface RelayPlan {
  /** What the client asked for; "responses" was sent upstream as a chat stream. */
  kind: "chat" | "completions" | "responses";
  /** The model id the client asked for (written into every event). */
  model: string;
  includeUsage: boolean;
  /** Choices the upstream will stream (n × prompts); the stream is complete when each has finished. */
  choices: number;
  /** The Responses API's echoed request and ids (kind "responses"). */
  frame?: ResponseFrame;
  flight: Flight;
  /** The request asked for a JSON answer: the scanner reads the text as JSON (a call's arguments always are). */
  jsonText?: boolean;
}

interface Call { index: number; id?: string; name?: string; args: string }
/** `thought`: a reasoning model's thought, through a filter of its own (thought-stream.ts). */
interface Choice { filter: TextFilter; thought: ReturnType<typeof thoughtStream>; calls: Map<number, Call>; finish?: string; done: boolean; text: string }

const REASONS: readonly string[] = ["stop", "length", "content_filter", "tool_calls"];

export function relayStream(deps: AppDeps, state: RequestState, reply: UpstreamReply, plan: RelayPlan): Response {
  const keepText = deps.config.logPrompts;
  state.deferredFinish = true;
  return sseResponse({
    headers: { "x-request-id": state.id, ...state.headers },
    named: plan.kind === "responses",
    maxBacklog: deps.config.limits.streamBacklogBytes,
    onLastEvent: () => state.idleAgain?.(),
    run: async (send) => {
      const wire: RelayWire = plan.kind === "responses" ? responsesWire(plan.frame!, send) : chatWire(plan.kind, plan.model, plan.includeUsage, send);
      const choices = new Map<number, Choice>();
      let usage: Obj | undefined, finished = 0, blocked = false;
      const choiceAt = (i: number): Choice => {
        let c = choices.get(i);
        if (!c) {
          c = { filter: deps.responseFilter(state, true, !!plan.jsonText), thought: thoughtStream(() => deps.responseFilter(state, true), (t) => wire.thought(i, t), { resumes: false }),
            calls: new Map(), done: false, text: "" };
          choices.set(i, c);
          wire.open(i);
        }
        return c;
      };
      const emit = (i: number, c: Choice, text: string) => { if (text) { wire.text(i, text); if (keepText) c.text += text; } };
      /** The rest of a finished choice: held-back text and the calls' arguments through its filter, then its end. */
      const close = (i: number, c: Choice, finish: string) => {
        c.done = true;
        finished++;
        c.thought.end();
        const ordered = [...c.calls.entries()].sort(([a], [b]) => a - b).map(([, x]) => ({
          ...x, id: x.id ?? `call_${state.id.slice(4)}_${i}_${x.index}`, name: x.name ?? "" }));
        // Each call's arguments, name and id, each through a filter of its own (leak run: a name or id went out as sent).
        const n = ordered.length;
        const end = scanStreamEnd(c.filter, [...ordered.map((x) => x.args), ...ordered.map((x) => x.name), ...ordered.map((x) => x.id)], (k) => deps.responseFilter(state, false, k < n)); // the arguments are JSON
        emit(i, c, end.text);
        const calls: ToolCall[] = n && end.args
          ? ordered.map((x, k) => ({ id: end.args![2 * n + k]!, name: end.args![n + k]!, arguments: end.args![k]! })) : [];
        const dropped = c.filter.blocked || c.thought.blocked || (ordered.length > 0 && !end.args);
        blocked ||= dropped;
        wire.end(i, dropped ? "content_filter" : (REASONS.includes(finish) ? finish : "stop") as FinishReason, calls);
      };
      try {
        let lastId: string | undefined, idOk = true;
        for await (const data of sseData(reply.chunks())) {
          if (data === "[DONE]") break;
          let ev: Obj;
          try { checkJsonShape(data, ANSWER_MAX_DEPTH, Number.MAX_SAFE_INTEGER); } catch { throw new UpstreamError(`The upstream sent a stream event nested deeper than ${ANSWER_MAX_DEPTH} levels.`); }
          try { ev = JSON.parse(data) as Obj; } catch { throw new UpstreamError("The upstream sent a stream event that is not JSON."); }
          // null, a number, an array: not an event of the API (it was read as one: a TypeError, a 500, fix-attack run).
          if (!isObject(ev)) throw new UpstreamError("The upstream sent a stream event that is not a JSON object.");
          if (ev.error) {
            // Through the scanner: an upstream's message may quote what its model wrote (leak run).
            // Scanned whole, then cut: cut first, a key across the cut left a prefix too short for its rule (red-team run).
            const msg = deps.responseFilter(state).whole(String((ev.error as Obj).message ?? "unknown error").slice(0, 64 << 10)).slice(0, 300);
            throw new UpstreamError(`The upstream reported an error mid-stream: ${msg}`);
          }
          // The upstream's id goes out with every chunk: scanned once per id it sends (a finding drops it).
          if (typeof ev.id === "string" && ev.id !== lastId) { lastId = ev.id; idOk = deps.responseFilter(state).whole(ev.id) === ev.id; }
          wire.base(idOk ? ev : { ...ev, id: undefined });
          if (ev.usage && typeof ev.usage === "object") usage = usageCounts(ev.usage); // counts only (scan-reply.ts)
          for (const u of Array.isArray(ev.choices) ? (ev.choices as Obj[]) : []) {
            if (!isObject(u)) throw new UpstreamError("The upstream streamed a choice that is not a JSON object.");
            const i = Number(u.index ?? 0);
            if (!Number.isInteger(i) || i < 0 || i >= plan.choices) throw new UpstreamError(`The upstream streamed a choice (index ${String(u.index)}) nobody asked for.`);
            const c = choiceAt(i);
            if (c.done) continue;
            // The first generated text or call as it arrives from the upstream: time to first token, and the start of
            // tokens/s (only the local engine marked it: a gateway's metrics had neither, scale-out run).
            const d = (isObject(u.delta) ? u.delta : {}) as Obj;
            // A reasoning model's thought: llama-server's, vLLM's and this server's reasoning_content, vLLM's newer reasoning.
            const thought = typeof d.reasoning_content === "string" ? d.reasoning_content : typeof d.reasoning === "string" ? d.reasoning : "";
            if ((typeof u.text === "string" && u.text) || (typeof d.content === "string" && d.content) || thought || Array.isArray(d.tool_calls)) state.marks["first-token"] ??= performance.now();
            if (plan.kind === "completions") { if (typeof u.text === "string") emit(i, c, c.filter.push(u.text)); }
            else {
              if (thought) c.thought.push(thought);
              if (typeof d.content === "string" && d.content) { c.thought.end(); emit(i, c, c.filter.push(d.content)); }
              for (const t of Array.isArray(d.tool_calls) ? (d.tool_calls as Obj[]) : []) {
                if (!isObject(t)) throw new UpstreamError("The upstream streamed a tool call that is not a JSON object.");
                const k = Number(t.index ?? 0), f = (isObject(t.function) ? t.function : {}) as Obj;
                const call = c.calls.get(k) ?? { index: k, args: "" };
                if (typeof t.id === "string") call.id = t.id;
                if (typeof f.name === "string") call.name = (call.name ?? "") + f.name;
                if (typeof f.arguments === "string") call.args += f.arguments;
                c.calls.set(k, call);
              }
            }
            if (typeof u.finish_reason === "string") c.finish = u.finish_reason;
            if (c.finish || c.filter.blocked || c.thought.blocked) close(i, c, c.finish ?? "content_filter");
          }
          if (blocked && finished >= plan.choices) break; // nothing more to pass on: stop the upstream now
        }
      } catch (e) {
        if (!(e instanceof CancelledError && plan.flight.cut())) throw e;
        // The shutdown's grace period ran out: end every answer properly, cut short.
        for (let i = 0; i < plan.choices; i++) { const c = choiceAt(i); if (!c.done) close(i, c, "length"); }
        state.status = 499;
      }
      if (finished < plan.choices) {
        if (finished === choices.size && usage) {
          // It finished every choice it streamed, just fewer than asked (an upstream that ignores n): not its failure.
          reply.end("ok");
          throw new UpstreamError(`The upstream streamed ${finished} of the ${plan.choices} choices asked for (it may not support n > 1).`);
        }
        reply.end("failed");
        throw new UpstreamError("The upstream stream ended before the answer finished.");
      }
      reply.end("ok");
      if (usage) { state.promptTokens = Number(usage.prompt_tokens ?? 0); state.completionTokens = Number(usage.completion_tokens ?? 0); }
      state.marks.done ??= performance.now();
      deps.settle(state);
      if (keepText) state.responseText = [...choices.values()].map((c) => c.text).join("\n");
      wire.finish(usage);
    },
    onCancel: () => plan.flight.abort(),
    errorEvent: (err) => {
      reply.end(plan.flight.signal.aborted ? "cancelled" : "failed");
      if (plan.flight.signal.aborted) return undefined;
      const e = toAppError("UNKNOWN", err, state.id, deps.log);
      state.status = e.status;
      state.errorCode = e.code ?? undefined;
      return errorBodyOf(e); // an {"error":…} event: the SDKs raise it (Responses streams as local ones do)
    },
    onFinish: (err) => {
      plan.flight.end();
      deps.settle(state);
      state.status ??= err && plan.flight.signal.aborted ? 499 : 200;
      if (state.status === 499) state.errorCode = "cancelled";
      deps.finish(state);
    },
  });
}
