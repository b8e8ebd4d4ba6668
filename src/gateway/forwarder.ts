/**
 * Sends one request to an upstream, with retries. An attempt fails on a
 * connection error, a timeout, a 5xx, a 401/403 (the upstream refused OUR key),
 * or any redirect (never followed: the request and its key go to the configured
 * URL and nowhere else). Failures count against the upstream's breaker and are
 * retried, with exponential backoff, on the least-busy other upstream — only
 * while nothing has been sent to the client: a non-streamed answer is read whole
 * and a stream's first chunk is read before the reply is handed back.
 */
import { nodeNet } from "../util/node-builtins";
import type { Config } from "../config/schema";
import { CancelledError } from "../errors";
import type { Logger } from "../log/logger";
import type { LeastInflight } from "./balancer";
import { connectProbe, WARM_MS } from "./connect-probe";
import { AttemptFailure, errorCode, plainMessage, retryAfterSeconds, UpstreamError, UpstreamUnavailableError } from "./errors";
import type { UpstreamPool } from "./pool";
import type { Upstream } from "./upstream";

export interface ForwardRequest {
  model: string;
  /** Path under the upstream's base URL, e.g. "/chat/completions". */
  path: string;
  body: unknown;
  stream: boolean;
  /** The client's signal: its disconnect aborts the upstream request. */
  signal: AbortSignal;
  requestId: string;
  /**
   * W3C traceparent naming this request's span as the parent: the upstream's request (an appliance continues it)
   * joins the same trace, so the two tiers' logs, audit records and spans share its trace id (scale-out run: nothing
   * but time linked them).
   */
  traceparent?: string;
  /**
   * The client's address as this gateway determined it (its socket peer, or from its own trusted proxies): sent as
   * X-Forwarded-For, so an upstream appliance whose trustedProxies lists this gateway names the client, not the gateway.
   */
  clientIp?: string;
}

export type Outcome = "ok" | "failed" | "cancelled";

export interface UpstreamReply {
  /** 2xx, or a 4xx the request itself caused (passed on to the client). */
  status: number;
  upstream: string;
  /** The whole body (non-streamed replies and every non-2xx). */
  text?: string;
  /** A stream's body, chunk by chunk; throws UpstreamError when the upstream dies or goes silent, CancelledError when the client left. */
  chunks(): AsyncGenerator<Uint8Array>;
  /** Ends the call (idempotent): "ok" closes the breaker, "failed" counts against it, "cancelled" does neither. */
  end(outcome: Outcome): void;
}

type Tunables = Config["gateway"];

/** The abort reason of a finished call (one object: no stack captured per request). */
const ENDED = Object.freeze(new Error("ended"));

const delay = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  if (!ms || signal.aborted) return resolve();
  const t = setTimeout(done, ms);
  signal.addEventListener("abort", done, { once: true });
  function done() { clearTimeout(t); signal.removeEventListener("abort", done); resolve(); }
});

export class Forwarder {
  constructor(private readonly pool: UpstreamPool, private readonly balancer: LeastInflight, private readonly g: Tunables, private readonly log: Logger,
    private readonly clock: () => number) {}

  async forward(req: ForwardRequest): Promise<UpstreamReply> {
    const bodyText = JSON.stringify(req.body);
    const tried = new Set<Upstream>();
    let last: AttemptFailure | undefined;
    for (let attempt = 0; attempt <= this.g.retries; attempt++) {
      if (attempt > 0) await delay(Math.min(this.g.backoffMaxMs, this.g.backoffMs * 2 ** (attempt - 1)), req.signal);
      if (req.signal.aborted) throw new CancelledError();
      const u = this.balancer.pick(this.pool.candidates(req.model), tried);
      if (!u) break;
      tried.add(u);
      const r = await this.attempt(u, req, bodyText);
      if (!(r instanceof AttemptFailure)) return r;
      last = r;
      this.log.warn({ reqId: req.requestId, upstream: u.name, attempt: attempt + 1, why: r.message, ...(r.detail && { detail: r.detail }), breaker: u.breaker.state }, "upstream attempt failed");
    }
    if (req.signal.aborted) throw new CancelledError();
    if (last && (last.kind === "status" || last.kind === "redirect")) throw new UpstreamError(`The upstream for '${req.model}' failed: it ${last.message}.`);
    const why = this.pool.unavailable(req.model, this.g.healthIntervalMs);
    // Nothing tried (all out) or every breaker open now: the pool says how long; attempts that merely failed: soon.
    const allOut = !last || this.pool.candidates(req.model).every((u) => !u.breaker.available());
    // A busy upstream's own Retry-After is passed on (it was replaced by 1: clients came back every second).
    const busy = last?.kind === "busy" ? last.retryAfterS : undefined;
    throw new UpstreamUnavailableError(req.model, allOut ? why.retryAfterS : busy ?? 1, last ? `last attempt: ${last.message}` : why.why);
  }

  private async attempt(u: Upstream, req: ForwardRequest, bodyText: string): Promise<UpstreamReply | AttemptFailure> {
    u.inflight++;
    u.breaker.acquire();
    const own = new AbortController();
    const signal = AbortSignal.any([req.signal, own.signal]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (ms: number, what: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => own.abort(new AttemptFailure(`${what} within ${ms} ms`, "timeout")), ms);
    };
    let ended = false;
    const end = (outcome: Outcome) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      u.inflight--;
      if (outcome === "ok") u.breaker.success();
      else if (outcome === "failed") u.breaker.failure();
      else u.breaker.release();
      own.abort(ENDED); // frees the connection of anything left unread
    };
    /** Maps a thrown error while talking to the upstream to a failure (or the client's cancel). */
    const failed = (e: unknown): AttemptFailure => {
      if (req.signal.aborted) { end("cancelled"); throw new CancelledError(); }
      const reason = own.signal.reason;
      const f = reason instanceof AttemptFailure ? reason : e instanceof AttemptFailure ? e
        : new AttemptFailure(`cannot reach it (${errorCode(e)})`, "network", undefined, plainMessage(e));
      end("failed");
      return f;
    };

    arm(this.g.firstByteTimeoutMs, "no answer");
    if (u.lastOkAt === undefined || this.clock() - u.lastOkAt > WARM_MS) {
      const f = await connectProbe(u.endpoint, this.g.connectTimeoutMs, signal);
      if (f) { if (req.signal.aborted) return failed(f); end("failed"); return f; }
    }
    let res: Response;
    try {
      res = await u.send(u.base + req.path, {
        method: "POST", body: bodyText, signal,
        headers: { "content-type": "application/json", accept: req.stream ? "text/event-stream" : "application/json", "x-request-id": req.requestId,
          ...(req.traceparent && { traceparent: req.traceparent }), ...(req.clientIp && nodeNet().isIP(req.clientIp) && { "x-forwarded-for": req.clientIp }) },
      });
    } catch (e) {
      return failed(e);
    }
    const s = res.status;
    u.lastOkAt = this.clock(); // it answered: reachable (connect-probe.ts)
    const refused = s >= 500 || s === 401 || s === 403 || (s >= 300 && s < 400) || s === 429 || s < 200;
    if (refused) {
      await res.body?.cancel().catch(() => {});
      if (s === 429) { end("cancelled"); return new AttemptFailure("busy (HTTP 429)", "busy", retryAfterSeconds(res.headers.get("retry-after"))); } // alive, just full
      end("failed");
      return s >= 300 && s < 400
        ? new AttemptFailure(`answered HTTP ${s}, a redirect (never followed)`, "redirect")
        : new AttemptFailure(`answered HTTP ${s}${s === 401 || s === 403 ? " (it refused the gateway's upstream key)" : ""}`, "status");
    }

    const streamed = req.stream && s < 300 && (res.headers.get("content-type") ?? "").includes("text/event-stream");
    const reader = streamed ? res.body?.getReader() : undefined;
    let text: string | undefined;
    const head: Uint8Array[] = [];
    let verdict: Verdict | null | undefined;
    try {
      if (!streamed) text = await res.text();
      else {
        // Read (under the first-byte timer) until the first whole `data:` line: it decides this attempt before the
        // client gets its 200. One that is not an event of the API (not a JSON object: HTML, null), the upstream's own
        // error, or the end, is this attempt's failure, retried elsewhere, not a 200 then an error (scale-out run; a
        // comment line, an `event:` line or a line split over reads came first and let such an event through).
        let seen = "";
        for (;;) {
          const r = await reader!.read();
          if (r.done) throw new AttemptFailure("ended the stream before its first event", "network");
          head.push(r.value);
          seen += new TextDecoder().decode(r.value, { stream: true });
          verdict = firstEvent(seen);
          if (verdict !== undefined || seen.length > 1 << 20) break;
        }
      }
    } catch (e) {
      return failed(e);
    }
    if (verdict) {
      await reader!.cancel().catch(() => {});
      end("failed");
      return new AttemptFailure(verdict.why, "status", undefined, verdict.detail);
    }
    clearTimeout(timer);
    if (!streamed) end("ok");

    const idle = this.g.idleTimeoutMs;
    const log = this.log;
    return {
      status: s, upstream: u.name, text, end,
      async *chunks() {
        for (const chunk of head) yield chunk;
        if (!streamed) return;
        try {
          for (;;) {
            arm(idle, "no data");
            const r = await reader!.read();
            clearTimeout(timer);
            if (r.done) return;
            yield r.value;
          }
        } catch (e) {
          if (req.signal.aborted) { end("cancelled"); throw new CancelledError(); }
          const reason = own.signal.reason;
          end("failed");
          log.warn({ reqId: req.requestId, upstream: u.name, why: reason instanceof AttemptFailure ? reason.message : plainMessage(e) }, "upstream stream broke");
          throw new UpstreamError(`The upstream stream broke: ${(reason instanceof AttemptFailure ? reason.message : errorCode(e)).replace(/\.+$/, "")}.`);
        }
      },
    };
  }
}

/** Why an attempt failed (told to the client), and what the upstream said (for the log only). */
interface Verdict { why: string; detail?: string }

/**
 * The stream so far, judged by its first whole `data:` line: undefined while there is none yet; null when it is an
 * event of the API (a JSON object that is not an error); otherwise why this attempt failed. An upstream's error
 * message goes to the log, not to the client: it reached the 502 unscanned, internal addresses and keys in it
 * (gateway red-team run; the forwarder has no response scanner, and a message mid-stream is scanned by the relay).
 */
function firstEvent(seen: string): Verdict | null | undefined {
  const m = /^data: ?(.*)\r?\n/m.exec(seen);
  if (!m) return undefined;
  const data = m[1]!.trim();
  if (data === "[DONE]") return { why: "ended its stream before its first event" };
  let ev: unknown;
  try { ev = JSON.parse(data); } catch { return { why: "sent a stream event that is not JSON" }; }
  if (ev === null || typeof ev !== "object" || Array.isArray(ev)) return { why: "sent a stream event that is not a JSON object" };
  if ("error" in ev && (ev as { error: unknown }).error) {
    return { why: "reported an error before its first token (its message is in the gateway's log)", detail: String((ev as { error: { message?: unknown } }).error?.message ?? "").slice(0, 200) };
  }
  return null;
}
