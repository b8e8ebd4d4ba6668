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
/**
 * Over the backlog bound, the client counts as not reading only when it has taken nothing for this long: a burst
 * written in one go (a Responses stream's closing events each repeat the whole answer's logprobs: 4 × 2.6 MB) was cut
 * for a client reading at full speed on loopback, which had had no chance to take any of it (second fix-attack run).
 */
const STALL_MS = 1_000;

export interface SseOptions {
  /** Produces events through `send`; rejects on failure. */
  run: (send: (event: unknown) => void) => Promise<void>;
  /** The client disconnected. */
  onCancel: () => void;
  /** A failure after the stream started: turned into an error event. */
  errorEvent: (error: unknown) => unknown | undefined;
  /**
   * Always called once: when the client has taken the last event (queued bytes drained), or with an error when the
   * stream failed, the client went away (even after the last event was queued: then with `cut`) or stopped reading.
   */
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
  let closed = false, finished = false, reported = false;
  let cut: Error | undefined; // set when the client stopped reading: the stream ends as a cancel, even after its last event
  // Our own queue, handed over only when the client's side reads (pull): so the end is known to have been taken. The
  // end was reported when it was queued: a client that stopped reading with MBs queued (under the backlog bound) was
  // later cut by the idle timeout, yet logged and audited as a complete 200 (load run).
  const queue: Uint8Array[] = [];
  let queued = 0;
  let outcome: unknown; // finish()'s error, reported once the client has taken everything
  let wake: (() => void) | undefined;
  const poke = () => { const w = wake; wake = undefined; w?.(); };
  const report = (err: unknown) => { if (!reported) { reported = true; opts.onFinish(err); } };
  let control!: ReadableStreamDefaultController<Uint8Array>;
  let lastPull = performance.now();
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      control = controller;
      const write = (s: string) => {
        if (closed) return;
        const bytes = encoder.encode(s);
        queue.push(bytes);
        queued += bytes.byteLength;
        poke();
        if (queued > HIGH_WATER + opts.maxBacklog && performance.now() - lastPull > STALL_MS) stalled();
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
        opts.onLastEvent?.(); // the idle timeout is back on: a client that never takes the rest is cut in the end
        outcome = err ?? cut;
        // A failure is what it is, whatever the client still takes; a stream already ended (cancel, stall) too.
        if (err !== undefined || closed) report(outcome);
        poke();
      }
    },
    async pull(controller) {
      // Called when the client's side wants bytes: hand over all that is queued, or wait for some, or end.
      lastPull = performance.now();
      while (!queue.length && !finished && !closed) await new Promise<void>((r) => { wake = r; });
      if (closed) return;
      if (queue.length) {
        const chunk = queue.length === 1 ? queue[0]! : Buffer.concat(queue);
        queue.length = 0;
        queued = 0;
        lastPull = performance.now(); // taken now (the pull may have waited long for it)
        controller.enqueue(chunk);
        return;
      }
      closed = true; // finished, and everything was taken
      controller.close();
      report(outcome);
    },
    cancel() {
      closed = true;
      opts.onCancel();
      // The client went before it had taken the end: not a complete answer.
      if (finished) report(outcome ?? cut ?? new Error("the client went away before the end of the stream reached it"));
      poke();
    },
  }, { highWaterMark: 0 });
  /** The client stopped reading: as if it had gone (the generation aborted, 499); the connection closes when the client reads again or at the idle timeout. */
  function stalled() {
    closed = true;
    cut = new Error("the client stopped reading the stream");
    queue.length = 0;
    queued = 0;
    opts.onCancel();
    try { control.error(cut); } catch { /* already closed */ }
    if (finished) report(cut);
    poke();
  }
  return new Response(stream, {
    status: 200,
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no", ...opts.headers },
  });
}
