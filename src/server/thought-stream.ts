/**
 * A reasoning model's streamed thought through a response filter of its own (a match must not run from the thought
 * into the answer), made at its first piece and emptied when the thought is over (the answer starts, or the choice
 * ends). The local stream (routes/generate-stream.ts) and the gateway's relay (upstream/relay.ts) both stream one.
 */
import type { TextFilter } from "../guards/response-scan";

export function thoughtStream(newFilter: () => TextFilter, send: (text: string) => void) {
  let filter: TextFilter | undefined, blocked = false;
  return {
    /** A piece of the thought: what the filter lets out now is sent; nothing more once a "block" rule fired. */
    push(text: string) {
      if (blocked) return;
      filter ??= newFilter();
      const piece = filter.push(text);
      if (piece) send(piece);
      blocked = filter.blocked;
    },
    /** The thought is over: what its filter held back is sent (not after a block). A later piece starts a new filter. */
    end() {
      const rest = filter && !filter.blocked ? filter.end() : "";
      if (rest) send(rest);
      filter = undefined;
    },
    /** A "block" rule fired in the thought: the choice is dropped as a blocked answer is. */
    get blocked() { return blocked; },
  };
}
