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
    // `dest: 1`, not `fd: 1`: pino reads `dest`, and without it asks process.stdout for its fd, and making that stream
    // loads Bun's node:stream (~4 ms of every start; util/node-builtins.ts). The same descriptor either way.
    dest ?? pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * `log`, or a child of it that also writes `level` lines where its own level is above that: for lines that must reach
 * the log whatever the operator's level (the audit checkpoints' journal copy: at `logLevel` warn they were dropped,
 * and with them the one copy a rewrite of the state dir cannot reach). A silent logger stays silent.
 */
export function atLeast(log: Logger, level: pino.Level): Logger {
  return log.level !== "silent" && log.levels.values[log.level]! > log.levels.values[level]! ? log.child({}, { level }) : log;
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => pino({ level: "silent" });
