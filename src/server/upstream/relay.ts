/**
 * An upstream's SSE stream, relayed to the client through the response
 * scanner: text deltas pass the filter as they arrive (the filter holds back
 * what might be the start of a secret), tool-call argument deltas are gathered
 * and sent as one event at the end after the scan (as local streams do), and a
 * "block" finding stops the upstream and ends the stream with finish_reason
 * "content_filter". An upstream that dies mid-stream ends the client's stream
 * with an OpenAI error event (the SDKs raise it); usage is taken for limits and
 * audit, and passed on only when the client asked for it.
 */
import { CancelledError } from "../../errors";
import type { UpstreamReply } from "../../gateway/gateway";
import { UpstreamError } from "../../gateway/errors";
import type { AppDeps } from "../deps";
import { errorBodyOf, toAppError } from "../errors";
import { sseResponse } from "../openai/sse";
import type { RequestState } from "../request-state";
import { scanStreamEnd } from "./scan-reply";
import { sseData } from "./sse-events";

type Obj = Record<string, unknown>;

export interface RelayPlan {
  kind: "chat" | "completions";
  /** The model id the client asked for (written into every event). */
  model: string;
  includeUsage: boolean;
  flight: { signal: AbortSignal; abort: () => void; end: () => void };
}

interface Call { id?: string; name?: string; args: string }

export function relayStream(deps: AppDeps, state: RequestState, reply: UpstreamReply, plan: RelayPlan): Response {
  const filter = deps.responseFilter(state);
  const keepText = deps.config.logPrompts;
  let streamed = "";
  state.deferredFinish = true;
  return sseResponse({
    headers: { "x-request-id": state.id, ...state.headers },
    run: async (send) => {
      let base: Obj = { object: plan.kind === "chat" ? "chat.completion.chunk" : "text_completion", model: plan.model };
      const chunk = (choice: Obj): Obj => ({ ...base, choices: [{ index: 0, ...choice }] });
      const piece = (text: string) => (plan.kind === "chat" ? chunk({ delta: { content: text }, finish_reason: null }) : chunk({ text, finish_reason: null }));
      const calls = new Map<number, Call>();
      let finish: string | undefined, usage: Obj | undefined, headSent = false;
      const emit = (text: string) => {
        const out = filter.push(text);
        if (out) { send(piece(out)); if (keepText) streamed += out; }
      };
      try {
        for await (const data of sseData(reply.chunks())) {
          if (data === "[DONE]") break;
          let ev: Obj;
          try { ev = JSON.parse(data) as Obj; } catch { throw new UpstreamError("The upstream sent a stream event that is not JSON."); }
          if (ev.error) {
            const msg = String((ev.error as Obj).message ?? "unknown error").slice(0, 300);
            throw new UpstreamError(`The upstream reported an error mid-stream: ${msg}`);
          }
          base = { id: ev.id, object: ev.object ?? base.object, created: ev.created, model: plan.model };
          if (ev.usage && typeof ev.usage === "object") usage = ev.usage as Obj;
          const c = (Array.isArray(ev.choices) ? ev.choices[0] : undefined) as Obj | undefined;
          if (!c) continue;
          if (plan.kind === "chat") {
            const d = (c.delta ?? {}) as Obj;
            if (!headSent) { send(chunk({ delta: { role: "assistant", content: "" }, finish_reason: null })); headSent = true; }
            if (typeof d.content === "string" && d.content) emit(d.content);
            for (const t of Array.isArray(d.tool_calls) ? (d.tool_calls as Obj[]) : []) {
              const i = Number(t.index ?? 0), f = (t.function ?? {}) as Obj;
              const call = calls.get(i) ?? { args: "" };
              if (typeof t.id === "string") call.id = t.id;
              if (typeof f.name === "string") call.name = (call.name ?? "") + f.name;
              if (typeof f.arguments === "string") call.args += f.arguments;
              calls.set(i, call);
            }
          } else if (typeof c.text === "string" && c.text) emit(c.text);
          if (typeof c.finish_reason === "string") finish = c.finish_reason;
          if (filter.blocked) break;
        }
      } catch (e) {
        if (!(e instanceof CancelledError && deps.draining)) throw e;
        finish = "length"; // the shutdown's grace period ran out: end the answer properly, cut short
        state.status = 499;
      }
      if (!finish && !filter.blocked) {
        reply.end("failed");
        throw new UpstreamError("The upstream stream ended before the answer finished.");
      }
      reply.end("ok");
      if (usage) { state.promptTokens = Number(usage.prompt_tokens ?? 0); state.completionTokens = Number(usage.completion_tokens ?? 0); }
      deps.settle(state);
      const ordered = [...calls.entries()].sort(([a], [b]) => a - b).map(([, c]) => c);
      const end = scanStreamEnd(filter, ordered.map((c) => c.args));
      if (end.text) { send(piece(end.text)); if (keepText) streamed += end.text; }
      if (keepText) state.responseText = streamed;
      if (ordered.length && end.args) {
        send(chunk({ delta: { tool_calls: ordered.map((c, i) => ({ index: i, id: c.id, type: "function", function: { name: c.name, arguments: end.args![i] } })) }, finish_reason: null }));
      }
      const reason = filter.blocked || (ordered.length && !end.args) ? "content_filter" : finish!;
      send(plan.kind === "chat" ? chunk({ delta: {}, finish_reason: reason }) : chunk({ text: "", finish_reason: reason }));
      if (plan.includeUsage && usage) send({ ...base, choices: [], usage });
    },
    onCancel: () => plan.flight.abort(),
    errorEvent: (err) => {
      reply.end(plan.flight.signal.aborted ? "cancelled" : "failed");
      if (plan.flight.signal.aborted) return undefined;
      const e = toAppError("UNKNOWN", err, state.id, deps.log);
      state.status = e.status;
      state.errorCode = e.code ?? undefined;
      return errorBodyOf(e);
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
