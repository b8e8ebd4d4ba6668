/**
 * pino straight to stdout (journald and launchd capture it). No transports:
 * they run in worker threads, which break inside the compiled binary.
 */
import pino, { type Logger, type DestinationStream } from "pino";

export type { Logger };

/** Paths that may carry secrets; pino replaces them before serialising. */
const REDACT = [
  "authorization", "*.authorization", "headers.authorization", "headers[\"x-api-key\"]",
  "key", "*.key", "secret", "*.secret", "apiKey", "*.apiKey",
];

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { app: "appliance" },
      redact: { paths: REDACT, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest ?? pino.destination({ fd: 1, sync: true }),
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => pino({ level: "silent" });
