/**
 * One request's admission work per event-loop turn.
 *
 * Why: requests that arrive together are all handed to JavaScript in one loop turn, and each one's admission
 * (schema validation, guards, the chat template, prompt tokenization: ~2 ms at 155 M params) runs to its first
 * real wait, so four of them held the loop for 6-9 ms: every open stream's next token and every timer waited for
 * all four (bench-peer's event-loop lag row). Each request now waits for its own turn: the first after one
 * setImmediate, each later one after the turn before it has run, so the loop polls I/O and runs timers between
 * them. A lone request pays one setImmediate (microseconds).
 */

let last: Promise<void> = Promise.resolve();

/** Resolves in a loop turn of its own, after every earlier caller's turn. */
export function admissionTurn(): Promise<void> {
  const turn = last.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
  last = turn;
  return turn;
}
