/**
 * pino straight to stdout (journald and launchd capture it). No transports:
 * they run in worker threads, which break inside the compiled binary.
 */
import pino, { type Logger, type DestinationStream } from "pino";

export type { Logger };

/** Paths that may carry secrets; pino replaces them before serialising. */
export const REDACT = [
  "authorization", "*.authorization", "headers.authorization", "headers[\"x-api-key\"]",
  "key", "*.key", "secret", "*.secret", "apiKey", "*.apiKey",
];
/** The field names REDACT censors (the last segment of each path). */
export const REDACTED_FIELDS = ["authorization", "x-api-key", "key", "secret", "apiKey"] as const;
export type RedactedField = (typeof REDACTED_FIELDS)[number];

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

/**
 * `log` without pino's redaction, for a line whose fields are fixed and typed so that none is a name REDACT censors
 * (`T` with a RedactedField key is `never`): the request summary written once per request (server/app.ts). There the
 * redaction found nothing to censor and still cost ~17 us of a `GET /v1/models` request's ~170 us of CPU: pino 10's
 * redactor reads its paths again at every line, and a `*.` path makes it the stringifier of every top-level field.
 */
export function unredacted(log: Logger): { info<T extends object>(line: Unredactable<T>, msg: string): void } {
  return log.child({}, { redact: { paths: [] } });
}

/** `T` where neither its fields nor its object fields' fields (REDACT's `*.x` depth) have a name REDACT censors; else never. */
type Unredactable<T> = Extract<keyof T, RedactedField> extends never
  ? ({ [K in keyof T]-?: NonNullable<T[K]> extends readonly unknown[] ? true : NonNullable<T[K]> extends object
    ? Extract<keyof NonNullable<T[K]>, RedactedField> extends never ? true : false : true }[keyof T] extends true ? T : never)
  : never;

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => pino({ level: "silent" });
