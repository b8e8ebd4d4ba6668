/**
 * Server-sent events from an upstream, as the `data` of each event (multi-line
 * data joined by "\n"; comments, `event:`/`id:` lines and empty events skipped).
 * Accepts \n and \r\n line ends and events split across any chunk boundary.
 */
import { UpstreamError } from "../../gateway/errors";

/**
 * The most one event may hold before its end: a Responses stream's `response.completed` repeats the whole answer (with
 * logprobs, megabytes). Without a bound, an upstream that never ended an event grew the gateway to 1.65 GB and its
 * /health to seconds (gateway red-team run).
 */
export const MAX_EVENT_CHARS = 16 << 20;

export async function* sseData(chunks: AsyncIterable<Uint8Array>, maxEvent = MAX_EVENT_CHARS): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  // The event being read, in the pieces it came in; only each new piece (after the last few characters before it, where
  // an end may begin) is searched for the event's end, and the pieces are joined once it is found: joining and
  // searching the whole buffer at every read was quadratic in an event's size.
  let parts: string[] = [], size = 0, tail = "";
  const parse = (block: string): string | undefined => {
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
    }
    return data.length ? data.join("\n") : undefined;
  };
  const tooBig = () => new UpstreamError(`The upstream sent a stream event over ${maxEvent >> 20} MiB.`);
  for await (const chunk of chunks) {
    let text = decoder.decode(chunk, { stream: true });
    for (;;) {
      const probe = tail + text;
      const m = /\r?\n\r?\n/.exec(probe);
      if (!m) {
        parts.push(text);
        size += text.length;
        tail = probe.slice(-3);
        if (size > maxEvent) throw tooBig();
        break;
      }
      const pending = parts.join("") + text;
      const at = size - tail.length + m.index; // where the end begins in pending
      const block = pending.slice(0, at);
      text = pending.slice(at + m[0].length);
      parts = []; size = 0; tail = "";
      const data = parse(block);
      if (data !== undefined) yield data;
    }
  }
  const rest = parts.join("") + decoder.decode();
  if (rest.length > maxEvent) throw tooBig();
  const data = parse(rest);
  if (data !== undefined && rest.trim()) yield data;
}
