/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent`
 * header a request arrives with, and the one we answer with. A valid header
 * makes our request span a child of the caller's span, in the caller's trace;
 * anything else (absent, malformed, all-zero ids, version ff) starts a new trace,
 * as the spec says a receiver must.
 */

export interface TraceContext {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** Our span for this request: 16 lowercase hex digits. */
  spanId: string;
  /** The caller's span, when a valid traceparent came in. */
  parentSpanId?: string;
  /** The caller's sampled flag (bit 0 of trace-flags); a new trace is sampled. */
  sampled: boolean;
}

/** version "-" trace-id "-" parent-id "-" trace-flags; a future version may append "-" and more fields. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

const hex = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");

/** The caller's context, or undefined when the header is missing or invalid. */
export function parseTraceparent(header: string | null | undefined): { traceId: string; parentSpanId: string; sampled: boolean } | undefined {
  if (!header || header.length > 512) return undefined;
  const m = TRACEPARENT.exec(header.trim());
  if (!m) return undefined;
  const [, version, traceId, parentSpanId, flags, rest] = m;
  if (version === "ff" || traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return undefined;
  if (version === "00" && rest !== undefined) return undefined; // version 00 has exactly four fields
  return { traceId: traceId!, parentSpanId: parentSpanId!, sampled: (parseInt(flags!, 16) & 1) === 1 };
}

/** This request's context: a child of the caller's span, or the root of a new trace. */
export function traceFor(header: string | null | undefined): TraceContext {
  const parent = parseTraceparent(header);
  let spanId = hex(8);
  while (spanId === ZERO_SPAN) spanId = hex(8);
  if (parent) return { traceId: parent.traceId, spanId, parentSpanId: parent.parentSpanId, sampled: parent.sampled };
  let traceId = hex(16);
  while (traceId === ZERO_TRACE) traceId = hex(16);
  return { traceId, spanId, sampled: true };
}

/** The header we send back: same trace, our span as the parent of whatever the caller does next. */
export const formatTraceparent = (t: TraceContext) => `00-${t.traceId}-${t.spanId}-${t.sampled ? "01" : "00"}`;

/** A fresh span id for a child span of this request. */
export const newSpanId = () => hex(8);
