/**
 * Until the returned function is called, SIGINT, SIGTERM and SIGHUP run `cleanup` and end the process as the signal
 * would (exit 128 + its number): for a command that holds something a kill would leave behind (`models add`'s
 * private copy of the model, the model's size, hidden in the models dir).
 */
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

export function onInterrupt(cleanup: () => void): () => void {
  const handlers = (Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]).map((signal) => {
    const handler = () => {
      try { cleanup(); } finally { process.exit(128 + SIGNALS[signal]); }
    };
    process.on(signal, handler);
    return () => process.off(signal, handler);
  });
  return () => { for (const off of handlers) off(); };
}
