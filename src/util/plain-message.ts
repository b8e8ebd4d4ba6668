/**
 * An error's message without Bun's advice to its own developer ("For more information, pass `verbose: true` in the
 * second argument to fetch()", "Is the computer able to access the url?"), which reached clients and logs (scale-out run).
 */
export const plainMessage = (e: unknown) => ((e as Error)?.message || String(e))
  .replace(/\s*For more information, pass `verbose: true` in the second argument to fetch\(\)\.?/g, "")
  .replace(/\s*Is the computer able to access the url\?/g, "").trim();
