/**
 * A reasoning model's streamed thought through a response filter of its own (a match must not run from the thought
 * into the answer), made at its first piece and emptied when the thought is over (the answer starts, or the choice
 * ends). The local stream (routes/generate-stream.ts) and the gateway's relay (upstream/relay.ts) both stream one.
 */
import type { TextFilter } from "../guards/response-scan";

export function thoughtStream(newFilter: () => TextFilter, send: (text: string) => void, opts: { resumes: boolean } = { resumes: true }) {
  let filter: TextFilter | undefined, blocked = false, over = false;
  return {
    /**
     * A piece of the thought: what the filter lets out now is sent; nothing more once a "block" rule fired. Where a
     * thought may not resume (`resumes: false`, an upstream's), nothing more once it is over either: a thought that
     * resumed after the answer began went through a fresh filter, so an upstream that put one content delta between two
     * halves of a key streamed both halves (gateway red-team run); it is dropped, as the Responses relay drops
     * reasoning that comes after the message began. The local engine's model may think again after some text (its
     * segments are joined in a non-streamed answer): a fresh filter reads each such thought.
     */
    push(text: string) {
      if (blocked || over) return;
      filter ??= newFilter();
      const piece = filter.push(text);
      if (piece) send(piece);
      blocked = filter.blocked;
    },
    /** A thought that began is over: what its filter held back is sent (not after a block). */
    end() {
      if (!filter) return; // no thought yet: one may still begin (after a newline of text, say)
      const rest = !filter.blocked ? filter.end() : "";
      if (rest) send(rest);
      filter = undefined;
      over = !opts.resumes;
    },
    /** A "block" rule fired in the thought: the choice is dropped as a blocked answer is. */
    get blocked() { return blocked; },
  };
}
