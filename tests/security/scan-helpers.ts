/** Helpers shared by the streamed-scanner tests (request-scanner-hold, scanner-stream-attack, its leaks file). */

/** A seeded PRNG, so a failing split or fuzz case can be reproduced from its seed. */
export function rng(seed: number) {
  return () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
}

/** What of a scanner's output a reader sees besides the redaction markers. */
export const shown = (out: string) => out.replace(/\[REDACTED:[a-z-]+\]/g, "");

/** `s` repeated and cut to exactly `n` characters. */
export const repeat = (s: string, n: number) => s.repeat(Math.ceil(n / s.length)).slice(0, n);
