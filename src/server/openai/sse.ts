/**
 * Server-sent events in OpenAI's dialect: `data: {json}\n\n` per event, then
 * `data: [DONE]`. A client that goes away cancels the stream, which aborts the
 * generation behind it at once.
 */
const encoder = new TextEncoder();

export interface SseOptions {
  /** Produces events through `send`; rejects on failure. */
  run: (send: (event: unknown) => void) => Promise<void>;
  /** The client disconnected. */
  onCancel: () => void;
  /** A failure after the stream started: turned into an error event. */
  errorEvent: (error: unknown) => unknown | undefined;
  /** Always called once, after the last byte or the cancel. */
  onFinish: (error?: unknown) => void;
  headers?: Record<string, string>;
  /** The Responses API dialect: an `event:` line named by each event's `type`, and no `[DONE]`. */
  named?: boolean;
}

export function sseResponse(opts: SseOptions): Response {
  let closed = false, finished = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const write = (s: string) => { if (!closed) controller.enqueue(encoder.encode(s)); };
      const name = (event: unknown) => {
        const type = (event as { type?: unknown })?.type;
        return opts.named && typeof type === "string" ? `event: ${type}\n` : "";
      };
      const send = (event: unknown) => write(`${name(event)}data: ${JSON.stringify(event)}\n\n`);
      opts.run(send).then(
        () => { if (!opts.named) write("data: [DONE]\n\n"); finish(); },
        (err) => {
          const ev = opts.errorEvent(err);
          if (ev !== undefined) send(ev);
          finish(err);
        },
      );
      function finish(err?: unknown) {
        if (finished) return;
        finished = true;
        if (!closed) { closed = true; try { controller.close(); } catch { /* already closed by cancel */ } }
        opts.onFinish(err);
      }
    },
    cancel() {
      closed = true;
      opts.onCancel();
    },
  });
  return new Response(stream, {
    status: 200,
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no", ...opts.headers },
  });
}
