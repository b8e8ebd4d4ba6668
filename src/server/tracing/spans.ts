/**
 * One request's spans, built once it has finished from the stage times on its
 * state (request-state.ts StageMarks): the request itself (a server span, child
 * of the caller's), and inside it the guards before the route, the prompt guard,
 * the wait for a sequence, prompt evaluation and generation. Nothing here holds
 * prompt or response text: attributes are ids, route, status and token counts.
 */
import type { RequestState } from "../request-state";
import { newSpanId } from "./trace-context";

/** A finished span in OTLP/JSON shape (opentelemetry-proto, trace/v1 Span; times as unix-nano strings). */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** 1 internal, 2 server. */
  kind: 1 | 2;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue: string } | { intValue: string } }[];
  /** 1 ok, 2 error (5xx). */
  status: { code: 0 | 1 | 2 };
}

/** performance.now() ms → unix nanoseconds, as the decimal string OTLP/JSON uses for 64-bit integers. */
const nanos = (ms: number) => (BigInt(Math.round((performance.timeOrigin + ms) * 1000)) * 1000n).toString();

const str = (key: string, v: string) => ({ key, value: { stringValue: v } });
const int = (key: string, v: number) => ({ key, value: { intValue: String(Math.round(v)) } });

/** The request span and its children; `end` is performance.now() when the response was done. */
export function requestSpans(s: RequestState, end: number): OtlpSpan[] {
  const { traceId, spanId, parentSpanId } = s.trace;
  const [method = "", path = ""] = s.route.split(" ");
  const error = (s.status ?? 0) >= 500 && s.status !== 499;
  const root: OtlpSpan = {
    traceId, spanId, ...(parentSpanId ? { parentSpanId } : {}), name: `${method} ${path}`, kind: 2,
    startTimeUnixNano: nanos(s.start), endTimeUnixNano: nanos(Math.max(end, s.start)),
    attributes: [
      str("http.request.method", method), str("url.path", path), int("http.response.status_code", s.status ?? 0),
      str("appliance.request_id", s.id),
      ...(s.keyName ? [str("appliance.key", s.keyName)] : []),
      ...(s.model ? [str("gen_ai.request.model", s.model)] : []),
      ...(s.promptTokens !== undefined ? [int("gen_ai.usage.input_tokens", s.promptTokens)] : []),
      ...(s.completionTokens !== undefined ? [int("gen_ai.usage.output_tokens", s.completionTokens)] : []),
      ...(s.errorCode ? [str("error.type", s.errorCode)] : []),
    ],
    // OpenTelemetry's HTTP conventions: ERROR for a server's 5xx, otherwise UNSET (instrumentation does not set OK; a 4xx is the client's).
    status: { code: error ? 2 : 0 },
  };
  const child = (name: string, from: number | undefined, to: number | undefined, attributes: OtlpSpan["attributes"] = []): OtlpSpan[] =>
    from === undefined || to === undefined || to < from ? [] : [{
      traceId, spanId: newSpanId(), parentSpanId: spanId, name, kind: 1,
      startTimeUnixNano: nanos(from), endTimeUnixNano: nanos(to), attributes, status: { code: 0 },
    }];
  const m = s.marks;
  const decisions = s.decisions.filter((d) => !d.startsWith("log:"));
  return [
    root,
    ...child("guards", s.start, m.guarded, decisions.length ? [str("appliance.guard.decisions", decisions.join(","))] : []),
    ...child("guard.prompt", m.promptGuard?.[0], m.promptGuard?.[1]),
    ...child("queue.wait", m.admitted, m.slot),
    ...child("prompt.eval", m.slot, m["first-token"] ?? m.done, s.promptTokens !== undefined ? [int("gen_ai.usage.input_tokens", s.promptTokens)] : []),
    ...child("generation", m["first-token"], m.done ?? end, s.completionTokens !== undefined ? [int("gen_ai.usage.output_tokens", s.completionTokens)] : []),
  ];
}
