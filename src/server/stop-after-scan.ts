/**
 * A request's stop strings looked for in the answer's text as it is sent: after the response scanner, not in what the
 * model wrote. Found by the engine in the model's text (engine/stop-text.ts), a stop that was a redacted secret, or
 * began inside one, cut the answer there: an answer that stopped told the client the hidden text, guess by guess, and
 * a stop just after a secret's start sent that start, too short to be a finding any more (red-team run). So where the
 * scanner reads answers, the server applies the stops (the engine gets none) and ends the generation once the text
 * it releases reaches one; the model writes on while the scanner holds text back, so `completion_tokens` may count a
 * few tokens past the stop, and what it wrote there is scanned too (with action block, a secret there blocks the answer,
 * as it would unstreamed). Not for a forced call (the engine ignores stops there), nor with the scanner off.
 */
import type { Config } from "../config/schema";

/** The stop strings the server applies after the scanner (engine/stop-text.ts stopPieces), or undefined (the engine applies them, if any). */
export function stopsAfterScan(config: Pick<Config, "responseScan">, stop: readonly string[] | undefined): readonly string[] | undefined {
  return config.responseScan.action !== "off" && stop?.some((s) => s) ? stop : undefined;
}
