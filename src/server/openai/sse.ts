/**
 * Server-sent events in OpenAI's dialect: `data: {json}\n\n` per event, then
 * `data: [DONE]`. A client that goes away cancels the stream, which aborts the
 * generation behind it at once; so does one that stays but stops reading, once
 * more than `maxBacklog` bytes wait for it (the socket's buffers full, the rest
 * queued here): generation does not wait for the reader, so a client that never
 * read (red team) had every answer generated and held, 200 MB for two sockets.
 */
import type { ErrorBody } from "../errors";

const encoder = new TextEncoder();
/** What is queued before the stream counts as behind at all (a few events). */
const HIGH_WATER = 64 * 1024;

export interface SseOptions {
  /** Produces events through `send`; rejects on failure. */
  run: (send: (event: unknown) => void) => Promise<void>;
  /** The client disconnected. */
  onCancel: () => void;
  /** A failure after the stream started: turned into an error event. */
  errorEvent: (error: unknown) => unknown | undefined;
  /** Always called once, after the last event is queued (Bun sends it on as the socket drains) or the cancel. */
  onFinish: (error?: unknown) => void;
  headers?: Record<string, string>;
  /** The Responses API dialect: an `event:` line named by each event's `type`, and no `[DONE]`. */
  named?: boolean;
  /** Just before the stream's end is written (the connection's idle timeout goes back on: app.ts). */
  onLastEvent?: () => void;
  /** Bytes queued for a client that is not reading before the stream is cancelled (limits.streamBacklogBytes). */
  maxBacklog: number;
}

/**
 * An error in the Responses dialect, as OpenAI streams it (`event: error`, `{"type":"error","code","message","param",
 * "sequence_number"}`: the AI SDK's Responses parser reads that and rejected a chat-style `{"error":…}` as a type
 * validation failure, scale-out run), with the chat-style `error` object kept beside it, which the openai SDK's stream
 * raises as an APIError.
 */
function responsesError(body: ErrorBody, sequence: number) {
  const e = body.error;
  return { type: "error", code: e.code ?? e.type, message: e.message, param: e.param, sequence_number: sequence, error: e };
}

export function sseResponse(opts: SseOptions): Response {
  let closed = false, finished = false;
  let cut: Error | undefined; // set when the client stopped reading: the stream ends as a cancel, even after its last event
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const write = (s: string) => {
        if (closed) return;
        controller.enqueue(encoder.encode(s));
        // desiredSize: the high-water mark minus the bytes queued (Bun takes them only as the socket drains).
        if ((controller.desiredSize ?? 0) < -opts.maxBacklog) stalled(controller);
      };
      const name = (event: unknown) => {
        const type = (event as { type?: unknown })?.type;
        return opts.named && typeof type === "string" ? `event: ${type}\n` : "";
      };
      let seq = -1; // the Responses dialect's last sequence_number sent
      const send = (event: unknown) => {
        const n = (event as { sequence_number?: unknown })?.sequence_number;
        if (typeof n === "number") seq = n;
        write(`${name(event)}data: ${JSON.stringify(event)}\n\n`);
      };
      opts.run(send).then(
        () => { if (!opts.named) write("data: [DONE]\n\n"); finish(); },
        (err) => {
          const ev = opts.errorEvent(err);
          if (ev !== undefined) send(opts.named ? responsesError(ev as ErrorBody, seq + 1) : ev);
          finish(err);
        },
      );
      function finish(err?: unknown) {
        if (finished) return;
        finished = true;
        opts.onLastEvent?.();
        if (!closed) { closed = true; try { controller.close(); } catch { /* already closed by cancel */ } }
        opts.onFinish(err ?? cut);
      }
    },
    cancel() {
      closed = true;
      opts.onCancel();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER }));
  /** The client stopped reading: as if it had gone (the generation aborted, 499); the connection is closed. */
  function stalled(controller: ReadableStreamDefaultController<Uint8Array>) {
    closed = true;
    cut = new Error("the client stopped reading the stream");
    opts.onCancel();
    try { controller.error(cut); } catch { /* already closed */ }
  }
  return new Response(stream, {
    status: 200,
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no", ...opts.headers },
  });
}
