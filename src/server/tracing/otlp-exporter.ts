/**
 * OTLP/HTTP (JSON encoding) export of finished spans to the one collector the
 * operator configured (tracing.otlpEndpoint); with none configured nothing is
 * built and no connection is ever made. Requests never wait on it: spans go into
 * a bounded queue (full → the new spans are dropped and counted), and a timer
 * sends them in batches, one POST at a time, each bounded by a timeout. A
 * collector that is down costs the server a failed POST per interval, nothing more.
 */
import { redactUrl } from "../../config/load";
import type { Logger } from "../../log/logger";
import type { OtlpSpan } from "./spans";
import { plainMessage } from "../../util/plain-message";

export interface ExporterOptions {
  /** Collector base URL (http://host:4318) or its full /v1/traces URL. */
  endpoint: string;
  maxQueue: number;
  serviceVersion: string;
  log: Logger;
  /** Spans per POST. */
  batchSize?: number;
  intervalMs?: number;
  timeoutMs?: number;
}

/** The URL spans are POSTed to: OTLP/HTTP's traces path under the base URL, unless it is already there. */
export function tracesUrl(endpoint: string): string {
  const u = endpoint.replace(/\/+$/, "");
  return u.endsWith("/v1/traces") ? u : `${u}/v1/traces`;
}

export class OtlpExporter {
  private queue: OtlpSpan[] = [];
  private sending = false;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly url: string;
  private readonly batchSize: number;
  private readonly timeoutMs: number;
  /** Counts for /metrics: spans sent, dropped on a full queue, and lost with a failed POST. */
  readonly stats = { exported: 0, dropped: 0, failed: 0 };
  private lastFailureLog = 0;

  constructor(private readonly o: ExporterOptions) {
    this.url = tracesUrl(o.endpoint);
    this.batchSize = o.batchSize ?? 512;
    this.timeoutMs = o.timeoutMs ?? 5_000;
    this.timer = setInterval(() => void this.flush(), o.intervalMs ?? 2_000);
    this.timer.unref?.(); // never what keeps the process alive
  }

  /** Queues a request's spans; never blocks, never throws. */
  add(spans: OtlpSpan[]) {
    const room = this.o.maxQueue - this.queue.length;
    if (room < spans.length) {
      this.stats.dropped += spans.length;
      return;
    }
    this.queue.push(...spans);
    if (this.queue.length >= this.batchSize) void this.flush();
  }

  /** Sends what is queued, batch by batch; a second call while one runs returns at once. */
  async flush(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.batchSize);
        await this.post(batch);
      }
    } finally {
      this.sending = false;
    }
  }

  /** At shutdown: one last flush, bounded, then the timer stops. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.race([this.flush(), Bun.sleep(this.timeoutMs)]);
  }

  private async post(spans: OtlpSpan[]) {
    const body = JSON.stringify({
      resourceSpans: [{
        resource: { attributes: [
          { key: "service.name", value: { stringValue: "appliance" } },
          { key: "service.version", value: { stringValue: this.o.serviceVersion } },
        ] },
        scopeSpans: [{ scope: { name: "appliance" }, spans }],
      }],
    });
    try {
      const r = await fetch(this.url, {
        method: "POST", body, headers: { "content-type": "application/json" },
        signal: AbortSignal.timeout(this.timeoutMs), redirect: "error", // a redirect would be a connection nobody listed
      });
      await r.arrayBuffer().catch(() => undefined);
      if (!r.ok) throw new Error(`collector answered ${r.status}`);
      this.stats.exported += spans.length;
    } catch (e) {
      this.stats.failed += spans.length;
      // One line a minute at most: a collector that is down must not flood the log.
      const now = Date.now();
      if (now - this.lastFailureLog > 60_000) {
        this.lastFailureLog = now;
        // The URL as `config print` shows it: a collector's credentials (user:password@, query values) stay out of the log.
        this.o.log.warn({ url: redactUrl(this.url), err: plainMessage(e), lost: spans.length }, "trace export failed; spans dropped");
      }
    }
  }
}
