/** The sampler's seeds (no imports: the OpenAI layer maps n choices' seeds with it, and the gateway loads no engine). */

/**
 * A request's seed (any integer OpenAI takes: int64) as llama.cpp's sampler takes it, 0..0xFFFFFFFE: its 0xFFFFFFFF
 * means "a random seed" (so seed 4294967295 was not reproducible), and node-llama-cpp made every negative seed 0
 * (so -1, -5 and 0 gave one sample, and n choices seeded seed + i could repeat one another). Integers apart by less
 * than 2^32 - 1 stay apart.
 */
export function engineSeed(seed: number): number {
  return ((seed % SEEDS) + SEEDS) % SEEDS;
}

/** How many seeds the sampler has (0..SEEDS-1; SEEDS itself, 0xFFFFFFFF, means random to llama.cpp). */
export const SEEDS = 0xffffffff;
