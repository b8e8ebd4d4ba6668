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
 * (Unredactable below: a call that could carry one does not compile): the request summary written once per request
 * (server/app.ts). There the redaction found nothing to censor and still cost ~17 us of a `GET /v1/models` request's
 * ~170 us of CPU: pino 10's redactor reads its paths again at every line, and a `*.` path makes it the stringifier of
 * every top-level field.
 */
export function unredacted(log: Logger): { info<T extends object>(line: Unredactable<T>, msg: string): void } {
  return log.child({}, { redact: { paths: [] } });
}

/**
 * `T` where no field, and no field of an object field (REDACT's depth: `*.x`, `headers.x`), has a name REDACT censors;
 * else never. Each member of a union is checked; a type whose names are not all known (an index signature, `any`,
 * `unknown`, a field that may be either a string or an object) counts as having one.
 */
type Unredactable<T> = 0 extends 1 & T ? never : T extends unknown
  ? (Open<T> extends true ? never : [Extract<keyof T, RedactedField>] extends [never]
    ? (true extends { [K in keyof T]-?: BadField<Exclude<T[K], undefined | null>> }[keyof T] ? never : T) : never)
  : never;
/** Whether `V` has an index signature (its field names are not known). */
type Open<V> = string extends keyof V ? true : number extends keyof V ? true : false;
/** Whether a field of type `V` may carry a redacted name one level down (or cannot be told). */
type BadField<V> = 0 extends 1 & V ? true : unknown extends V ? true
  : V extends readonly unknown[] ? false
  : V extends object ? (Open<V> extends true ? true : [Extract<keyof V, RedactedField>] extends [never] ? false : true) : false;

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => pino({ level: "silent" });
